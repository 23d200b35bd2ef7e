"""A loopback DMS + DDS + domain server that follows PROTOCOL.md and records every request.

One ThreadingHTTPServer on 127.0.0.1 serves the three under /dms/v1, /dds and /domain. Tests seed data
and tasks, inject faults (error statuses, delays, and hostile bodies: dripped, oversized, without a
length), and read back what the node sent.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import coincurve
from Crypto.Hash import keccak

CAPABILITY = "/splatter/colmap/v1"
DOMAIN_ID = "domain-0001"
SEND_CHUNK_BYTES = 1024 * 1024
_DISPOSITION_PARAM = re.compile(r'; ([a-z-]+)="((?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*)"')


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _keccak(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def recover_address(message: str, signature: str) -> str:
    """Independent EIP-191 check: recover the signer's address from a 0x r‖s‖v signature."""
    raw = bytes.fromhex(signature.removeprefix("0x"))
    digest = _keccak(
        b"\x19Ethereum Signed Message:\n" + str(len(message.encode())).encode() + message.encode()
    )
    public = coincurve.PublicKey.from_signature_and_message(
        raw[:64] + bytes([raw[64] - 27]), digest, hasher=None
    )
    return "0x" + _keccak(public.format(compressed=False)[1:])[-20:].hex()


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Fault:
    """Answer matching requests with status (after delay seconds), times times (None: always).

    A request matches on method and path, and also on a query key and on bytes in its body when given.
    body replaces the answer's content (status 200 unless given); drip_secs sends the content one byte
    at a time; declare_length False leaves out Content-Length and ends the body by closing."""

    method: str
    path: str  # regular expression, full match against the path
    status: int | None = None
    delay: float = 0.0
    times: int | None = None
    query_has: str | None = None
    body_has: bytes | None = None
    body: bytes | None = None
    drip_secs: float = 0.0
    declare_length: bool = True


@dataclass
class DataItem:
    id: str
    name: str
    data_type: str
    content: bytes
    created_at: str
    updated_at: str

    def meta(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "domain_id": DOMAIN_ID,
            "name": self.name,
            "data_type": self.data_type,
            "size": len(self.content),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class EmulatedTask:
    id: str
    job_id: str
    capability: str
    inputs_cids: list[str]
    lease_secs: float
    arrives_expired: bool = False
    arrives_cancelled: bool = False
    state: str = "pending"
    lease_expires_at: float = 0.0
    domain_token: str = ""
    cancel_requested: bool = False
    heartbeats: list[dict[str, Any]] = field(default_factory=list)


class Emulator:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        # DDS
        self.registration_secret = "test-registration-secret"
        self.register_status: int | None = None
        self.registrations: list[dict[str, Any]] = []
        self.nonces: set[str] = set()
        self.token_lifetime_secs = 600.0
        self.login_tokens: dict[str, float] = {}
        self.logins = 0
        # DMS
        self.queue: list[EmulatedTask] = []
        self.tasks: dict[str, EmulatedTask] = {}
        self.completes: dict[str, dict[str, Any]] = {}
        self.fails: dict[str, dict[str, Any]] = {}
        self.rotate_token_on_first_heartbeat = True
        # domain
        self.items: dict[str, DataItem] = {}
        self.domain_tokens: set[str] = set()
        self.request_max_bytes: int | None = 64 * 1024 * 1024
        self.multipart_enabled = True
        self.part_size = 5 * 1024 * 1024
        self.multipart_reply_fields: dict[str, dict[str, Any]] = {}  # "start"/"part": fields to put over
        self.uploads: dict[str, dict[str, Any]] = {}
        self.aborted_uploads: list[str] = []

        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in separate writes: without this, delayed ACKs cost 40 ms a call
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:  # noqa: N802
                emulator._dispatch(self)

            do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.dms_url = f"{self.base_url}/dms/v1"
        self.dds_url = f"{self.base_url}/dds"
        self.domain_url = f"{self.base_url}/domain"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- seeding and inspection -------------------------------------------------------------

    def add_item(self, name: str, data_type: str, content: bytes) -> str:
        now = rfc3339(time.time())
        item = DataItem(str(uuid.uuid4()), name, data_type, content, now, now)
        with self.lock:
            self.items[item.id] = item
        return item.id

    def cid(self, data_id: str) -> str:
        return f"{self.domain_url}/api/v1/domains/{DOMAIN_ID}/data/{data_id}"

    def add_task(
        self,
        inputs_cids: list[str],
        capability: str = CAPABILITY,
        lease_secs: float = 60.0,
        arrives_expired: bool = False,
        arrives_cancelled: bool = False,
        task_id: str | None = None,
    ) -> str:
        task = EmulatedTask(
            id=task_id or str(uuid.uuid4()),
            job_id=str(uuid.uuid4()),
            capability=capability,
            inputs_cids=inputs_cids,
            lease_secs=lease_secs,
            arrives_expired=arrives_expired,
            arrives_cancelled=arrives_cancelled,
        )
        with self.lock:
            self.queue.append(task)
            self.tasks[task.id] = task
        return task.id

    def cancel(self, task_id: str) -> None:
        """The next heartbeat of this task is answered with cancel: true."""
        with self.lock:
            self.tasks[task_id].cancel_requested = True

    def revoke_login_tokens(self) -> None:
        with self.lock:
            self.login_tokens.clear()

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def item_named(self, name: str) -> DataItem | None:
        with self.lock:
            return next((item for item in self.items.values() if item.name == name), None)

    def matching(self, method: str, path_pattern: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and re.fullmatch(path_pattern, r.path)]

    def heartbeats(self, task_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.tasks[task_id].heartbeats)

    def is_settled(self, task_id: str) -> bool:
        with self.lock:
            return task_id in self.completes or task_id in self.fails

    def wait_for(self, condition: Any, timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    # ---- HTTP plumbing ------------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        chunked = "chunked" in handler.headers.get("Transfer-Encoding", "")
        body = b"" if chunked else handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        record = Recorded(
            method=handler.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        with self.lock:
            self.requests.append(record)
        fault = self._take_fault(record)
        if fault is not None:
            time.sleep(fault.delay)
        if chunked:
            status, payload = 411, {"error": "chunked bodies are not accepted; send Content-Length"}
            handler.close_connection = True
        elif fault is not None and fault.body is not None:
            status, payload = fault.status or 200, fault.body
        elif fault is not None and fault.status is not None:
            status, payload = fault.status, {"error": "injected fault"}
        else:
            try:
                status, payload = self._route(record)
            except Exception as exc:  # a bug in a handler shows up as a 599 in the test's assertions
                status, payload = 599, {"error": repr(exc)}
        record.status = status
        if isinstance(payload, bytes):
            data, content_type = payload, "application/octet-stream"
        else:
            data, content_type = (
                (b"" if payload is None else json.dumps(payload).encode()),
                "application/json",
            )
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            if fault is None or fault.declare_length:
                handler.send_header("Content-Length", str(len(data)))
            else:
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            _send_body(handler, data, fault.drip_secs if fault is not None else 0.0)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts, limits)

    def _take_fault(self, record: Recorded) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (
                    fault.method == record.method
                    and re.fullmatch(fault.path, record.path)
                    and (fault.query_has is None or fault.query_has in record.query)
                    and (fault.body_has is None or fault.body_has in record.body)
                    and (fault.times is None or fault.times > 0)
                ):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _route(self, r: Recorded) -> tuple[int, Any]:
        if r.path.startswith("/dds/"):
            return self._dds(r, r.path.removeprefix("/dds"))
        if r.path.startswith("/dms/v1/"):
            return self._dms(r, r.path.removeprefix("/dms/v1"))
        if r.path.startswith("/domain/"):
            return self._domain(r, r.path.removeprefix("/domain"))
        return 404, {"error": "unknown service"}

    # ---- DDS ----------------------------------------------------------------------------------

    def _dds(self, r: Recorded, path: str) -> tuple[int, Any]:
        if path == "/internal/v1/auth/siwe/request":
            nonce = uuid.uuid4().hex
            with self.lock:
                self.nonces.add(nonce)
            return 200, {
                "nonce": nonce,
                "domain": "dds.test",
                "uri": "https://dds.test",
                "version": "1",
                "chainId": 1,
                "issuedAt": rfc3339(time.time()),
                "wallet": r.json()["wallet"],
            }
        body = r.json()
        if not self._siwe_valid(body["message"], body["signature"]):
            return 401, {"error": "bad signature"}
        if path == "/internal/v1/nodes/register-wallet":
            with self.lock:
                self.registrations.append(body)
            if body["registration_credentials"] != self.registration_secret:
                return 403, {"error": "bad registration credentials"}
            if self.register_status is not None:
                return self.register_status, {"error": "scripted"}
            return 200, {"ok": True}
        if path == "/internal/v1/auth/siwe/verify":
            if body["address"] != body["message"].splitlines()[1]:
                return 401, {"error": "address mismatch"}
            token = f"login-{uuid.uuid4().hex}"
            expires = time.time() + self.token_lifetime_secs
            with self.lock:
                self.login_tokens[token] = expires
                self.logins += 1
            return 200, {"access_token": token, "access_expires_at": rfc3339(expires)}
        return 404, {"error": "unknown DDS path"}

    def _siwe_valid(self, message: str, signature: str) -> bool:
        lines = message.splitlines()
        nonce = next((line.removeprefix("Nonce: ") for line in lines if line.startswith("Nonce: ")), None)
        with self.lock:
            if nonce not in self.nonces:
                return False
            self.nonces.discard(nonce)
        return (
            lines[0] == "dds.test wants you to sign in with your Ethereum account:"
            and recover_address(message, signature) == lines[1]
        )

    # ---- DMS ----------------------------------------------------------------------------------

    def _dms(self, r: Recorded, path: str) -> tuple[int, Any]:
        token = r.headers.get("authorization", "").removeprefix("Bearer ")
        with self.lock:
            if self.login_tokens.get(token, 0) <= time.time():
                return 401, {"error": "invalid or expired token"}
            if path == "/tasks" and r.method == "GET":
                return self._lease(r)
            match = re.fullmatch(r"/tasks/([^/]+)/(heartbeat|complete|fail)", path)
            if not match or unquote(match[1]) not in self.tasks or r.method != "POST":
                return 404, {"error": "unknown DMS path"}
            task = self.tasks[unquote(match[1])]
            if task.state != "leased":
                return 409, {"error": f"task is {task.state}"}
            if match[2] == "heartbeat":
                return self._heartbeat(task, r.json())
            (self.completes if match[2] == "complete" else self.fails)[task.id] = r.json()
            task.state = "completed" if match[2] == "complete" else "failed"
            return 200, {"ok": True}

    def _lease(self, r: Recorded) -> tuple[int, Any]:
        if not self.queue:
            return 204, None
        if r.query.get("capability") != [CAPABILITY]:
            return 400, {"error": "unexpected capability filter"}
        task = self.queue.pop(0)
        task.state = "leased"
        now = time.time()
        task.lease_expires_at = now - 5 if task.arrives_expired else now + task.lease_secs
        task.domain_token = f"domain-{uuid.uuid4().hex}"
        self.domain_tokens.add(task.domain_token)
        return 200, {
            "access_token": task.domain_token,
            "access_token_expires_at": rfc3339(now + 3600),
            "lease_expires_at": rfc3339(task.lease_expires_at),
            "cancel": task.arrives_cancelled,
            "status": "cancelled" if task.arrives_cancelled else "leased",
            "domain_id": DOMAIN_ID,
            "domain_server_url": self.domain_url,
            "task": {
                "id": task.id,
                "job_id": task.job_id,
                "capability": task.capability,
                "inputs_cids": task.inputs_cids,
                "outputs_prefix": f"splatter/{task.job_id}",
                "label": "splatter",
                "stage": "splatter",
                "meta": {},
                "attempts": 1,
                "max_attempts": 3,
            },
        }

    def _heartbeat(self, task: EmulatedTask, body: dict[str, Any]) -> tuple[int, Any]:
        task.heartbeats.append(body)
        now = time.time()
        if now > task.lease_expires_at:
            return 410, {"error": "lease expired"}
        task.lease_expires_at = now + task.lease_secs
        reply: dict[str, Any] = {
            "cancel": task.cancel_requested,
            "status": "cancelled" if task.cancel_requested else "running",
            "lease_expires_at": rfc3339(task.lease_expires_at),
        }
        if self.rotate_token_on_first_heartbeat and len(task.heartbeats) == 1:
            self.domain_tokens.discard(task.domain_token)
            task.domain_token = f"domain-{uuid.uuid4().hex}"
            self.domain_tokens.add(task.domain_token)
            reply |= {"access_token": task.domain_token, "access_token_expires_at": rfc3339(now + 3600)}
        return 200, reply

    # ---- domain server ------------------------------------------------------------------------

    def _domain(self, r: Recorded, path: str) -> tuple[int, Any]:
        if r.headers.get("authorization", "").removeprefix("Bearer ") not in self.domain_tokens:
            return 401, {"error": "invalid domain token"}
        if not r.headers.get("posemesh-client-id"):
            return 400, {"error": "posemesh-client-id header missing"}
        if path == "/api/v1/info" and r.method == "GET":
            return 200, {
                "upload": {
                    "request_max_bytes": self.request_max_bytes,
                    "multipart": {"enabled": self.multipart_enabled},
                }
            }
        prefix = f"/api/v1/domains/{DOMAIN_ID}/data"
        if path == prefix:
            return {"GET": self._query, "POST": self._create, "PUT": self._update}.get(r.method, _no_route)(r)
        if path == f"{prefix}/multipart":
            return self._multipart(r)
        if path.startswith(prefix + "/") and r.method == "GET":
            item = self.items.get(path.removeprefix(prefix + "/"))
            if item is None:
                return 404, {"error": "no such item"}
            return (200, item.content) if r.query.get("raw") == ["true"] else (200, item.meta())
        return 404, {"error": "unknown domain path"}

    def _query(self, r: Recorded) -> tuple[int, Any]:
        with self.lock:
            items = list(self.items.values())
        if "ids" in r.query:
            if "name" in r.query or "data_type" in r.query:
                return 400, {"error": "ids cannot be mixed with name/data_type"}
            ids = r.query["ids"][0].split(",")
            if len(ids) > 100:
                return 400, {"error": "at most 100 ids"}
            if not all(_is_uuid(i) for i in ids):
                return 400, {"error": "ids must be UUIDs"}
            return 200, {"data": [i.meta() for i in items if i.id in ids]}
        name, data_type = r.query.get("name", [None])[0], r.query.get("data_type", [None])[0]
        # a loose match, as servers may do: the client must filter for exact names itself
        found = [i for i in items if (name is None or i.name.startswith(name))]
        return 200, {"data": [i.meta() for i in found if data_type is None or i.data_type == data_type]}

    def _form_parts(self, r: Recorded) -> list[tuple[dict[str, str], bytes]] | tuple[int, Any]:
        if self.request_max_bytes is not None and len(r.body) > self.request_max_bytes:
            return 413, {"error": "request too large"}
        match = re.fullmatch(r"multipart/form-data; boundary=(\S+)", r.headers.get("content-type", ""))
        if not match:
            return 400, {"error": "not multipart/form-data"}
        delimiter = b"--" + match[1].encode()
        if not r.body.startswith(delimiter + b"\r\n") or not r.body.endswith(b"\r\n" + delimiter + b"--\r\n"):
            return 400, {"error": "malformed multipart framing"}
        parts = []
        for chunk in r.body[len(delimiter) + 2 : -(len(delimiter) + 6)].split(b"\r\n" + delimiter + b"\r\n"):
            head, _, content = chunk.partition(b"\r\n\r\n")
            headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
            if set(headers) != {"Content-Disposition", "Content-Type"}:
                return 400, {"error": f"unexpected part headers {sorted(headers)}"}
            parts.append((headers, content))
        return parts

    def _create(self, r: Recorded) -> tuple[int, Any]:
        parts = self._form_parts(r)
        if isinstance(parts, tuple):
            return parts
        created = []
        for headers, content in parts:
            params = disposition_params(headers["Content-Disposition"])
            if params is None or set(params) != {"name", "data-type"} or not _is_octet_stream(headers):
                return 400, {"error": f"bad part headers {headers}"}
            if self.item_named(params["name"]) is not None:
                return 409, {"error": "name exists"}
            created.append(self.items[self.add_item(params["name"], params["data-type"], content)].meta())
        return 200, {"data": created}

    def _update(self, r: Recorded) -> tuple[int, Any]:
        parts = self._form_parts(r)
        if isinstance(parts, tuple):
            return parts
        updated = []
        for headers, content in parts:
            params = disposition_params(headers["Content-Disposition"])
            if params is None or set(params) != {"id"} or not _is_octet_stream(headers):
                return 400, {"error": f"bad part headers {headers}"}
            if params["id"] not in self.items:
                return 404, {"error": "no such item"}
            item = self.items[params["id"]]
            item.content, item.updated_at = content, rfc3339(time.time())
            updated.append(item.meta())
        return 200, {"data": updated}

    def _multipart(self, r: Recorded) -> tuple[int, Any]:
        if not self.multipart_enabled:
            return 404, {"error": "multipart disabled"}
        if r.method == "POST" and "uploads" in r.query:
            upload_id = uuid.uuid4().hex
            self.uploads[upload_id] = {"init": r.json(), "parts": {}}
            reply = {"upload_id": upload_id, "part_size": self.part_size}
            return 200, reply | self.multipart_reply_fields.get("start", {})
        upload = self.uploads.get(r.query.get("uploadId", [""])[0])
        if upload is None:
            return 404, {"error": "no such upload"}
        if r.method == "PUT":
            if len(r.body) > self.part_size:
                return 413, {"error": "part too large"}
            etag = hashlib.md5(r.body).hexdigest()
            upload["parts"][int(r.query["partNumber"][0])] = (etag, r.body)
            return 200, {"etag": etag} | self.multipart_reply_fields.get("part", {})
        if r.method == "DELETE":
            self.aborted_uploads.append(r.query["uploadId"][0])
            del self.uploads[r.query["uploadId"][0]]
            return 200, {"ok": True}
        if r.method == "POST":
            listed = r.json()["parts"]
            if [p["part_number"] for p in listed] != sorted(upload["parts"]):
                return 400, {"error": "parts list does not match uploaded parts"}
            if any(upload["parts"][p["part_number"]][0] != p["etag"] for p in listed):
                return 400, {"error": "etag mismatch"}
            content = b"".join(upload["parts"][n][1] for n in sorted(upload["parts"]))
            init = upload["init"]
            if len(content) != init["size"]:
                return 400, {"error": "size mismatch"}
            del self.uploads[r.query["uploadId"][0]]
            if init["existing_id"]:
                item = self.items[init["existing_id"]]
                item.content = content
                return 200, item.meta()
            return 200, self.items[self.add_item(init["name"], init["data_type"], content)].meta()
        return 405, {"error": "method not allowed"}


def disposition_params(header: str) -> dict[str, str] | None:
    """`form-data; name="a \\"b\\""` → {"name": 'a "b"'}: quoted-string parameters, backslash escapes
    undone, as a strict server parses them; None when the header is malformed or repeats a parameter."""
    if not header.startswith("form-data"):
        return None
    params: dict[str, str] = {}
    position = len("form-data")
    while position < len(header):
        match = _DISPOSITION_PARAM.match(header, position)
        if match is None or match[1] in params:
            return None
        params[match[1]] = re.sub(r"\\(.)", r"\1", match[2])
        position = match.end()
    return params


def _is_octet_stream(headers: dict[str, str]) -> bool:
    return headers.get("Content-Type") == "application/octet-stream"


def _send_body(handler: BaseHTTPRequestHandler, data: bytes, drip_secs: float) -> None:
    """The whole body in large writes, or one byte every drip_secs (a server that barely moves)."""
    step = 1 if drip_secs else SEND_CHUNK_BYTES
    for start in range(0, len(data), step):
        handler.wfile.write(data[start : start + step])
        if drip_secs:
            handler.wfile.flush()
            time.sleep(drip_secs)


def _is_uuid(text: str) -> bool:
    """Item ids are UUIDs (the domain server stores them as such), so any other id is a bad request."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _no_route(r: Recorded) -> tuple[int, Any]:
    return 405, {"error": f"{r.method} not allowed"}
