"""Domain server data API: metadata, streamed downloads, and uploads (form or multipart) by upsert."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .cancel import CancelSignal
from .retry import Backoff, with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")

IDS_PER_METADATA_CALL = 100
STREAM_CHUNK_BYTES = 1024 * 1024
OCTET_STREAM = "application/octet-stream"
_CID_MARKER = "/api/v1/domains/"


class UploadTooLarge(RuntimeError):
    """The file exceeds the server's request limit and the server offers no multipart upload."""


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
    size: int


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


def parse_meta(item: dict[str, Any]) -> DataMeta:
    return DataMeta(
        id=str(item["id"]),
        domain_id=str(item.get("domain_id") or ""),
        name=str(item.get("name") or ""),
        data_type=str(item.get("data_type") or ""),
        size=int(item.get("size") or 0),
    )


def parse_single_meta(body: dict[str, Any]) -> DataMeta:
    """Uploads answer either `{"data": [meta]}` or the metadata object itself."""
    items = body.get("data")
    return parse_meta(items[0] if isinstance(items, list) and items else body)


def create_disposition(name: str, data_type: str) -> str:
    return f'form-data; name="{name}"; data-type="{data_type}"'


def update_disposition(data_id: str) -> str:
    return f'form-data; id="{data_id}"'


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

    def stream(self, path: Path) -> Iterator[bytes]:
        yield self.head
        with path.open("rb") as source:
            while chunk := source.read(STREAM_CHUNK_BYTES):
                yield chunk
        yield self.tail


class DomainClient:
    """Calls against one domain with the lease's (rotating) access token; retryable failures back off."""

    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        domain_id: str,
        token: Callable[[], str],
        client_id: str,
        backoff: Backoff,
        cancel: CancelSignal,
    ):
        self._http = http
        self._base_url = base_url
        self._domain_id = domain_id
        self._token = token
        self._client_id = client_id
        self._backoff = backoff
        self._cancel = cancel
        self._limits: UploadLimits | None = None

    @property
    def _data_url(self) -> str:
        return f"{self._base_url}/api/v1/domains/{self._domain_id}/data"

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

    def download(self, data_id: str, destination: Path) -> int:
        """Stream an item's bytes to a temporary name beside destination, then rename; returns the size."""
        partial = destination.with_name(destination.name + ".part")

        def attempt() -> int:
            self._cancel.check()
            size = 0
            with self._http.stream(
                "GET", f"{self._data_url}/{data_id}", params={"raw": "true"}, headers=self._headers()
            ) as reply:
                reply.raise_for_status()
                with partial.open("wb") as sink:
                    for chunk in reply.iter_bytes(STREAM_CHUNK_BYTES):
                        self._cancel.check()
                        sink.write(chunk)
                        size += len(chunk)
            partial.replace(destination)
            return size

        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._retrying(attempt, f"download of {data_id}")
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
        reply = self._http.get(f"{self._base_url}/api/v1/info", headers=self._headers())
        if reply.status_code == 404:  # servers that predate /info have no stated limit
            return UploadLimits(request_max_bytes=None, multipart_enabled=False)
        reply.raise_for_status()
        upload = reply.json().get("upload") or {}
        max_bytes = upload.get("request_max_bytes")
        return UploadLimits(
            request_max_bytes=int(max_bytes) if max_bytes else None,
            multipart_enabled=bool((upload.get("multipart") or {}).get("enabled")),
        )

    def _upload_form(self, path: Path, envelope: FormEnvelope, size: int, method: str, name: str) -> DataMeta:
        def attempt() -> DataMeta:
            reply = self._http.request(
                method,
                self._data_url,
                content=envelope.stream(path),
                headers=self._headers()
                | {"Content-Type": envelope.content_type, "Content-Length": str(envelope.body_size(size))},
            )
            reply.raise_for_status()
            return parse_single_meta(reply.json())

        return self._retrying(attempt, f"upload of {name}")

    def _upload_multipart(
        self, path: Path, size: int, name: str, data_type: str, existing_id: str | None
    ) -> DataMeta:
        url = f"{self._data_url}/multipart"
        started = self._retrying(
            lambda: self._json_call(
                "POST",
                f"{url}?uploads",
                {
                    "name": name,
                    "data_type": data_type,
                    "size": size,
                    "content_type": OCTET_STREAM,
                    "existing_id": existing_id,
                },
            ),
            f"start of multipart upload of {name}",
        )
        upload_id, part_size = str(started["upload_id"]), int(started["part_size"])
        try:
            parts = [
                {"part_number": number, "etag": self._upload_part(url, upload_id, path, number, part_size)}
                for number in range(1, max(1, -(-size // part_size)) + 1)
            ]
            finished = self._retrying(
                lambda: self._json_call("POST", url, {"parts": parts}, {"uploadId": upload_id}),
                f"completion of multipart upload of {name}",
            )
        except BaseException:
            self._abort_multipart(url, upload_id)
            raise
        return parse_single_meta(finished)

    def _upload_part(self, url: str, upload_id: str, path: Path, number: int, part_size: int) -> str:
        def attempt() -> str:
            with path.open("rb") as source:
                source.seek((number - 1) * part_size)
                chunk = source.read(part_size)
            reply = self._http.put(
                url,
                params={"uploadId": upload_id, "partNumber": number},
                content=chunk,
                headers=self._headers() | {"Content-Type": OCTET_STREAM},
            )
            reply.raise_for_status()
            return str(reply.json()["etag"])

        return self._retrying(attempt, f"upload of part {number}")

    def _abort_multipart(self, url: str, upload_id: str) -> None:
        try:
            self._http.delete(url, params={"uploadId": upload_id}, headers=self._headers()).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("could not abort multipart upload %s: %s", upload_id, exc)

    def _find_id(self, name: str, data_type: str) -> str | None:
        matches = self.metadata_by_name(name, data_type)
        return matches[0].id if matches else None

    def _metadata(self, query: dict[str, str], what: str) -> list[DataMeta]:
        def attempt() -> list[DataMeta]:
            reply = self._http.get(self._data_url, params=query, headers=self._headers())
            reply.raise_for_status()
            return [parse_meta(item) for item in reply.json().get("data") or []]

        return self._retrying(attempt, what)

    def _json_call(
        self, method: str, url: str, body: dict[str, Any], params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        reply = self._http.request(method, url, json=body, params=params, headers=self._headers())
        reply.raise_for_status()
        return reply.json()

    def _retrying(self, operation: Callable[[], T], what: str) -> T:
        self._cancel.check()
        return with_retries(operation, what=what, backoff=self._backoff, pause=self._cancel.pause)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}", "posemesh-client-id": self._client_id}
