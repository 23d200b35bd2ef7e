"""Domain server data API: metadata, streamed downloads, and uploads (form or multipart) by upsert.

Every exchange goes through one place that adds the bearer only for the lease's domain server and holds
the exchange to its transfer limits."""

from __future__ import annotations

import json
import logging
import secrets
import unicodedata
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .cancel import CancelSignal
from .retry import Backoff, with_retries
from .transfer import SizeCap, TransferAborted, TransferGuard, TransferLimits
from .urls import path_segment, same_server

log = logging.getLogger(__name__)
T = TypeVar("T")

IDS_PER_METADATA_CALL = 100
STREAM_CHUNK_BYTES = 1024 * 1024
OCTET_STREAM = "application/octet-stream"
MULTIPART_MAX_PARTS = 10_000
"""S3's limit, which multipart uploads follow: a part size that needs more parts is no usable answer,
and a tiny one would turn one file into millions of requests."""
_CID_MARKER = "/api/v1/domains/"
JSON_REPLY_CAP = SizeCap(16 * 1024 * 1024, "the node's limit on a JSON reply")


class ForeignServer(RuntimeError):
    """A request would have taken the lease's token to a server other than the lease's domain server."""


class UnsafeFormValue(ValueError):
    """A multipart header value with a control character, which no quoting makes safe."""


class UploadTooLarge(RuntimeError):
    """The file exceeds the server's request limit and the server offers no multipart upload."""


class UnusablePartSize(RuntimeError):
    """The server started a multipart upload with a part size no upload of the file can use."""


class UnusableReply(RuntimeError):
    """A reply the node cannot take as it stands: no JSON object, or item metadata with a field
    missing or of a type or value no item has."""

    def __init__(self, what: str, why: str):
        super().__init__(f"the domain server's reply for {what} is unusable: {why}")


@dataclass(frozen=True)
class DataRef:
    """Where one data item lives: the CID URL split into server base, domain and item id."""

    base_url: str
    domain_id: str
    data_id: str


@dataclass(frozen=True)
class DataMeta:
    id: str
    domain_id: str
    name: str
    data_type: str
    size: int | None
    """As the metadata declares it; None when it does not."""


@dataclass(frozen=True)
class UploadLimits:
    request_max_bytes: int | None
    multipart_enabled: bool


def parse_data_cid(cid: str, fallback_base_url: str, fallback_domain_id: str) -> DataRef:
    """`{base}/api/v1/domains/{domain}/data/{id}` → its parts; a bare id falls back to the lease's domain."""
    if _CID_MARKER not in cid:
        return DataRef(fallback_base_url, fallback_domain_id, cid.strip("/"))
    base, rest = cid.split(_CID_MARKER, 1)
    domain_id, _, tail = rest.partition("/")
    data_id = tail.split("?", 1)[0].removeprefix("data/").strip("/")
    return DataRef(base.rstrip("/"), domain_id, data_id)


class DomainBearer(httpx.Auth):
    """The lease's bearer, added only to requests for the lease's domain server; a request for any other
    server is refused before it is sent, so no link a task carries can take the token elsewhere."""

    def __init__(self, server_url: str, token: Callable[[], str]):
        self._server_url = server_url
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not same_server(str(request.url), self._server_url):
            raise ForeignServer(
                f"{request.url.copy_with(query=None)} is not on the lease's domain server "
                f"{self._server_url or '(the lease names none)'}; the domain token is sent nowhere else"
            )
        request.headers["Authorization"] = f"Bearer {self._token()}"
        yield request


def is_whole_number(value: Any) -> bool:
    """Whether a JSON value is an integer: not a bool, a float (NaN and Infinity among them) or text."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_meta_reply(body: dict[str, Any], what: str) -> list[DataMeta]:
    """The items of a metadata reply `{"data": [item, ...]}`; no data, or null, is no items."""
    items = body.get("data")
    if items is None:
        return []
    if not isinstance(items, list):
        raise UnusableReply(what, f"its data {items!r:.80} is no list")
    return [parse_meta(item, index, what) for index, item in enumerate(items, start=1)]


def parse_single_meta(body: dict[str, Any], what: str) -> DataMeta:
    """Uploads answer either `{"data": [meta]}` or the metadata object itself."""
    items = body.get("data")
    return parse_meta(items[0] if isinstance(items, list) and items else body, 1, what)


def parse_meta(item: Any, index: int, what: str) -> DataMeta:
    """The index-th item (from 1) of the reply for what: it must have an id, and whatever else it
    declares must be of its type (its size bounds the item's download). A name may be missing (a
    multipart upload's completion answers with the id alone; a nameless item matches no lookup)."""
    if not isinstance(item, dict):
        raise UnusableReply(what, f"item {index} {item!r:.80} is no JSON object")
    size = item.get("size")
    if size is not None and not (is_whole_number(size) and size >= 0):
        raise UnusableReply(what, f"item {index}'s size {size!r:.80} is no whole number of bytes")
    return DataMeta(
        id=_text_field(item, "id", f"item {index}", what, required=True),
        domain_id=_text_field(item, "domain_id", f"item {index}", what),
        name=_text_field(item, "name", f"item {index}", what),
        data_type=_text_field(item, "data_type", f"item {index}", what),
        size=size,
    )


def _text_field(fields: dict[str, Any], key: str, owner: str, what: str, *, required: bool = False) -> str:
    """fields[key] as text (owner names the fields in a reason: "item 3"); missing, null or empty is ""
    where the field is not required. Ids and names go into log lines and fail reasons, where a control
    character (CR, LF, an escape) could forge or hide a line, so text with one is refused."""
    value = fields.get(key)
    if value in (None, ""):
        if required:
            raise UnusableReply(what, f"{owner} has no {key}")
        return ""
    if not isinstance(value, str):
        raise UnusableReply(what, f"{owner}'s {key} {value!r:.80} is no text")
    if has_control_character(value):
        raise UnusableReply(what, f"{owner}'s {key} {value!r:.80} has a control character")
    return value


def has_control_character(text: str) -> bool:
    """Whether text holds a character (CR, LF, NUL, ...) that could end a header it is written into."""
    return any(unicodedata.category(char) == "Cc" for char in text)


def form_value(value: str) -> str:
    """value as the quoted-string RFC 7578 parameters are: backslash and double quote escaped with a
    backslash. Control characters (CR and LF among them) could end the header, so they are refused."""
    if has_control_character(value):
        raise UnsafeFormValue(f"form field value {value!r} contains a control character; refusing to send it")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def create_disposition(name: str, data_type: str) -> str:
    return f"form-data; name={form_value(name)}; data-type={form_value(data_type)}"


def update_disposition(data_id: str) -> str:
    return f"form-data; id={form_value(data_id)}"


def part_count(part_size: Any, size: int, name: str) -> int:
    """How many parts of part_size bytes carry a file of size bytes (one at least, for an empty file)."""
    where = f"for {name} ({size} bytes)"
    if not is_whole_number(part_size) or part_size <= 0:
        raise UnusablePartSize(
            f"the domain server's multipart part_size {part_size!r:.80} is no positive whole number of "
            f"bytes {where}"
        )
    count = max(1, -(-size // part_size))
    if count > MULTIPART_MAX_PARTS:
        raise UnusablePartSize(
            f"the domain server's multipart part_size of {part_size} bytes would split it into {count} "
            f"parts (at most {MULTIPART_MAX_PARTS}) {where}"
        )
    return count


def file_chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    """length bytes of path from start, STREAM_CHUNK_BYTES at a time."""
    with path.open("rb") as source:
        source.seek(start)
        while length > 0 and (chunk := source.read(min(STREAM_CHUNK_BYTES, length))):
            length -= len(chunk)
            yield chunk


@dataclass(frozen=True)
class FormEnvelope:
    """The bytes around one file part of a multipart/form-data body, built by hand because the
    domain server wants a `data-type` parameter that standard form encoders do not write."""

    boundary: str
    head: bytes
    tail: bytes

    @classmethod
    def for_part(cls, disposition: str) -> FormEnvelope:
        boundary = f"splatter-{secrets.token_hex(16)}"
        head = (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {OCTET_STREAM}\r\n\r\n"
        ).encode()
        return cls(boundary, head, f"\r\n--{boundary}--\r\n".encode())

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def body_size(self, file_size: int) -> int:
        return len(self.head) + file_size + len(self.tail)

    def stream(self, path: Path, size: int) -> Iterator[bytes]:
        yield self.head
        yield from file_chunks(path, 0, size)
        yield self.tail


class DomainClient:
    """Calls against one domain with the lease's (rotating) access token; retryable failures back off."""

    def __init__(
        self,
        http: httpx.Client,
        server_url: str,
        base_url: str,
        domain_id: str,
        token: Callable[[], str],
        client_id: str,
        backoff: Backoff,
        cancel: CancelSignal,
        limits: TransferLimits,
    ):
        """server_url is the lease's domain server, the only one the token goes to; base_url and
        domain_id are where the task's data lives."""
        self._http = http
        self._auth = DomainBearer(server_url, token)
        self._base_url = base_url
        self._domain_id = domain_id
        self._client_id = client_id
        self._backoff = backoff
        self._cancel = cancel
        self._transfer_limits = limits
        self._limits: UploadLimits | None = None

    @property
    def _data_url(self) -> str:
        return f"{self._base_url}/api/v1/domains/{path_segment(self._domain_id)}/data"

    def metadata_by_ids(self, ids: list[str]) -> list[DataMeta]:
        found: list[DataMeta] = []
        for start in range(0, len(ids), IDS_PER_METADATA_CALL):
            chunk = ids[start : start + IDS_PER_METADATA_CALL]
            found += self._metadata({"ids": ",".join(chunk)}, f"metadata of {len(chunk)} items")
        return found

    def metadata_by_name(self, name: str, data_type: str | None = None) -> list[DataMeta]:
        """Items named exactly name (and of data_type when given)."""
        query = {"name": name} | ({"data_type": data_type} if data_type else {})
        items = self._metadata(query, f"metadata of {name!r}")
        return [m for m in items if m.name == name and (data_type is None or m.data_type == data_type)]

    def download(self, item: DataMeta, destination: Path, ceiling: SizeCap | None = None) -> int:
        """Stream an item's bytes to a temporary name beside destination, then rename; returns the size.

        The item may not grow past its declared size plus slack (DOWNLOAD_SIZE_SLACK_BYTES), nor past
        ceiling when given (for items the node reads into memory)."""
        partial = destination.with_name(destination.name + ".part")
        what = f"download of {item.name} ({item.id})"

        def attempt() -> int:
            self._cancel.check()
            size = 0
            with self._exchange(
                "GET",
                f"{self._data_url}/{path_segment(item.id)}",
                what,
                self._transfer_limits.download_cap(item.size, ceiling),
                params={"raw": "true"},
            ) as (reply, chunks):
                reply.raise_for_status()
                with partial.open("wb") as sink:
                    for chunk in chunks:
                        self._cancel.check()
                        size += sink.write(chunk)
            partial.replace(destination)
            return size

        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._retrying(attempt, what)
        finally:
            partial.unlink(missing_ok=True)

    def upsert(self, path: Path, name: str, data_type: str, known_id: str | None) -> DataMeta:
        """Replace the item this task already uploaded, else an exact (name, type) match, else create."""
        existing_id = known_id or self._find_id(name, data_type)
        if existing_id:
            return self.upload(path, name, data_type, existing_id)
        try:
            return self.upload(path, name, data_type, None)
        except httpx.HTTPStatusError as exc:
            # 409: the name appeared meanwhile (or a retried create had already succeeded).
            if exc.response.status_code != 409 or not (existing_id := self._find_id(name, data_type)):
                raise
            return self.upload(path, name, data_type, existing_id)

    def upload(self, path: Path, name: str, data_type: str, existing_id: str | None) -> DataMeta:
        """Create (existing_id None) or replace an item, multipart when one request may not carry it."""
        disposition = update_disposition(existing_id) if existing_id else create_disposition(name, data_type)
        envelope = FormEnvelope.for_part(disposition)
        size = path.stat().st_size
        limits = self.limits()
        if limits.request_max_bytes is None or envelope.body_size(size) <= limits.request_max_bytes:
            return self._upload_form(path, envelope, size, "PUT" if existing_id else "POST", name)
        if not limits.multipart_enabled:
            raise UploadTooLarge(
                f"{name} is {size} bytes, over the domain's request limit of {limits.request_max_bytes} "
                "bytes, and the domain does not offer multipart upload"
            )
        return self._upload_multipart(path, size, name, data_type, existing_id)

    def limits(self) -> UploadLimits:
        if self._limits is None:
            self._limits = self._retrying(self._fetch_limits, "domain info")
        return self._limits

    def _fetch_limits(self) -> UploadLimits:
        try:
            info = self._json_call("GET", f"{self._base_url}/api/v1/info", "domain info")
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:  # servers that predate /info have no stated limit
                return UploadLimits(request_max_bytes=None, multipart_enabled=False)
            raise
        upload = info.get("upload") or {}
        multipart = upload.get("multipart") or {} if isinstance(upload, dict) else None
        if not isinstance(multipart, dict):
            raise UnusableReply("domain info", f"its upload {upload!r:.80} is no object of upload limits")
        max_bytes = upload.get("request_max_bytes") or None  # 0 or absent: no stated limit
        if max_bytes is not None and not (is_whole_number(max_bytes) and max_bytes > 0):
            raise UnusableReply(
                "domain info", f"its upload.request_max_bytes {max_bytes!r:.80} is no positive whole number"
            )
        return UploadLimits(
            request_max_bytes=max_bytes,
            multipart_enabled=bool(multipart.get("enabled")),
        )

    def _upload_form(self, path: Path, envelope: FormEnvelope, size: int, method: str, name: str) -> DataMeta:
        what = f"upload of {name}"
        return self._retrying(
            lambda: parse_single_meta(
                self._json_call(
                    method,
                    self._data_url,
                    what,
                    body=envelope.stream(path, size),
                    body_size=envelope.body_size(size),
                    headers={"Content-Type": envelope.content_type},
                ),
                what,
            ),
            what,
        )

    def _upload_multipart(
        self, path: Path, size: int, name: str, data_type: str, existing_id: str | None
    ) -> DataMeta:
        url = f"{self._data_url}/multipart"
        started = self._retrying(
            lambda: self._json_call(
                "POST",
                f"{url}?uploads",
                f"start of multipart upload of {name}",
                json={
                    "name": name,
                    "data_type": data_type,
                    "size": size,
                    "content_type": OCTET_STREAM,
                    "existing_id": existing_id,
                },
            ),
            f"start of multipart upload of {name}",
        )
        upload_id = _text_field(
            started, "upload_id", "the reply", f"start of multipart upload of {name}", required=True
        )
        part_size = started.get("part_size")
        try:
            parts = [
                {
                    "part_number": number,
                    "etag": self._upload_part(url, upload_id, path, number, part_size, size),
                }
                for number in range(1, part_count(part_size, size, name) + 1)
            ]
            finished = self._retrying(
                lambda: self._json_call(
                    "POST",
                    url,
                    f"completion of multipart upload of {name}",
                    json={"parts": parts},
                    params={"uploadId": upload_id},
                ),
                f"completion of multipart upload of {name}",
            )
        except BaseException:
            self._abort_multipart(url, upload_id)
            raise
        return parse_single_meta(finished, f"completion of multipart upload of {name}")

    def _upload_part(
        self, url: str, upload_id: str, path: Path, number: int, part_size: int, size: int
    ) -> str:
        start = (number - 1) * part_size
        length = min(part_size, size - start)
        what = f"upload of part {number}"
        return self._retrying(
            lambda: _text_field(
                self._json_call(
                    "PUT",
                    url,
                    what,
                    body=file_chunks(path, start, length),
                    body_size=length,
                    params={"uploadId": upload_id, "partNumber": number},
                    headers={"Content-Type": OCTET_STREAM},
                ),
                "etag",
                "the reply",
                what,
                required=True,
            ),
            what,
        )

    def _abort_multipart(self, url: str, upload_id: str) -> None:
        try:
            with self._exchange(
                "DELETE", url, "abort of a multipart upload", JSON_REPLY_CAP, params={"uploadId": upload_id}
            ) as (reply, _):
                reply.raise_for_status()
        except (httpx.HTTPError, TransferAborted) as exc:
            log.warning("could not abort multipart upload %s: %s", upload_id, exc)

    def _find_id(self, name: str, data_type: str) -> str | None:
        matches = self.metadata_by_name(name, data_type)
        return matches[0].id if matches else None

    def _metadata(self, query: dict[str, str], what: str) -> list[DataMeta]:
        return self._retrying(
            lambda: parse_meta_reply(self._json_call("GET", self._data_url, what, params=query), what),
            what,
        )

    def _json_call(
        self,
        method: str,
        url: str,
        what: str,
        *,
        body: Iterable[bytes] | None = None,
        body_size: int = 0,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One exchange whose reply is a JSON object; an error status raises before the body is read."""
        with self._exchange(method, url, what, JSON_REPLY_CAP, body=body, body_size=body_size, **kwargs) as (
            reply,
            chunks,
        ):
            reply.raise_for_status()
            try:
                parsed = json.loads(b"".join(chunks))
            except ValueError:  # not JSON, or not UTF-8
                parsed = None
        if not isinstance(parsed, dict):
            raise UnusableReply(what, "it is no JSON object")
        return parsed

    @contextmanager
    def _exchange(
        self,
        method: str,
        url: str,
        what: str,
        cap: SizeCap,
        *,
        body: Iterable[bytes] | None = None,
        body_size: int = 0,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Iterator[tuple[httpx.Response, Iterator[bytes]]]:
        """The reply to one request and its body as it arrives, both held to the transfer limits; a
        streamed body is sent with body_size as its Content-Length (the domain refuses chunked bodies)."""
        guard = TransferGuard(cap, self._transfer_limits, what)
        headers = {"posemesh-client-id": self._client_id} | (headers or {})
        if body is not None:
            kwargs["content"] = guard.sending(body)
            headers["Content-Length"] = str(body_size)
        with self._http.stream(method, url, headers=headers, auth=self._auth, **kwargs) as reply:
            yield reply, guard.receiving(reply)

    def _retrying(self, operation: Callable[[], T], what: str) -> T:
        self._cancel.check()
        return with_retries(operation, what=what, backoff=self._backoff, pause=self._cancel.pause)
