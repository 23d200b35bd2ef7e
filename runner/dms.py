"""DMS task API: lease, heartbeat, complete, fail — with the login token, re-logging in once on 401.

Everything sent to DMS passes through the node's redactor here, and every token DMS or DDS hands out is
added to it here, so no report can carry a secret whatever produced its text."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from .auth import TokenKeeper
from .redaction import Redactor
from .retry import Backoff, is_retryable_status, with_retries
from .timestamps import parse_rfc3339
from .urls import path_segment

log = logging.getLogger(__name__)

STOP_STATUSES = frozenset({"cancelled", "canceled", "failed", "completed"})
REASON_MAX_BYTES = 4096
PAYLOAD_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Task:
    id: str
    job_id: str
    capability: str
    inputs_cids: tuple[str, ...]
    outputs_prefix: str
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class Lease:
    task: Task
    domain_id: str
    domain_server_url: str
    access_token: str
    lease_expires_at: float | None
    cancel: bool
    status: str


@dataclass(frozen=True)
class HeartbeatReply:
    cancel: bool
    status: str
    access_token: str | None
    lease_expires_at: float | None

    @property
    def means_stop(self) -> bool:
        return self.cancel or self.status.lower() in STOP_STATUSES


class LeaseLost(RuntimeError):
    """DMS no longer recognises this node's lease; the task must stop without reporting."""


def parse_lease(body: dict[str, Any]) -> Lease:
    task = body["task"]
    return Lease(
        task=Task(
            id=str(task["id"]),
            job_id=str(task.get("job_id") or task["id"]),
            capability=str(task.get("capability") or ""),
            inputs_cids=tuple(str(cid) for cid in task.get("inputs_cids") or ()),
            outputs_prefix=str(task.get("outputs_prefix") or ""),
            attempts=int(task.get("attempts") or 0),
            max_attempts=int(task.get("max_attempts") or 0),
        ),
        domain_id=str(body.get("domain_id") or ""),
        domain_server_url=str(body.get("domain_server_url") or "").rstrip("/"),
        access_token=str(body.get("access_token") or ""),
        lease_expires_at=_optional_time(body.get("lease_expires_at")),
        cancel=bool(body.get("cancel")),
        status=str(body.get("status") or ""),
    )


def parse_heartbeat_reply(body: dict[str, Any]) -> HeartbeatReply:
    return HeartbeatReply(
        cancel=bool(body.get("cancel")),
        status=str(body.get("status") or ""),
        access_token=body.get("access_token") or None,
        lease_expires_at=_optional_time(body.get("lease_expires_at")),
    )


@dataclass(frozen=True)
class Refusal:
    reason: str
    tell_dms: bool
    """Whether DMS should hear a fail; a stopped or expired lease is no longer ours to report on."""


def lease_refusal(lease: Lease, capability: str, now: float) -> Refusal | None:
    """Why this node must not run the lease, or None when it should."""
    if lease.cancel or lease.status.lower() in STOP_STATUSES:
        return Refusal(
            f"lease arrived already stopped (status {lease.status!r}, cancel={lease.cancel})", False
        )
    if lease.lease_expires_at is not None and lease.lease_expires_at <= now:
        return Refusal("lease arrived already expired", False)
    if lease.task.capability != capability:
        return Refusal(
            f"capability {lease.task.capability!r} is not served by this node ({capability})", True
        )
    if not lease.task.inputs_cids:
        return Refusal("the task has no inputs_cids", True)
    return None


def task_path(task_id: str, action: str) -> str:
    """`/tasks/{id}/{action}` with the id as one path segment, whatever characters it holds."""
    return f"/tasks/{path_segment(task_id)}/{action}"


def truncate_utf8(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode(errors="ignore")


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def _optional_time(value: Any) -> float | None:
    return parse_rfc3339(str(value)) if value else None


class DmsClient:
    """One method per DMS endpoint; transient failures are retried, 401 triggers one re-login."""

    def __init__(
        self, http: httpx.Client, base_url: str, tokens: TokenKeeper, backoff: Backoff, redactor: Redactor
    ):
        self._http = http
        self._base_url = base_url
        self._tokens = tokens
        self._backoff = backoff
        self._redactor = redactor

    def lease(self, capability: str) -> Lease | None:
        """A new lease, or None when DMS has no work for this node (204, or 409 busy)."""
        reply = self._send("GET", "/tasks", params={"capability": capability})
        if reply.status_code in (204, 409):
            return None
        reply.raise_for_status()
        lease = parse_lease(reply.json())
        self._redactor.remember(lease.access_token)
        return lease

    def heartbeat(
        self, task_id: str, progress: dict[str, Any], events: list[dict[str, Any]]
    ) -> HeartbeatReply:
        """Raises LeaseLost when DMS refuses the heartbeat (a non-2xx that is not transient; a 401 only
        after logging in again), RetriesExhausted when DMS kept failing transiently."""
        reply = self._post(task_path(task_id, "heartbeat"), {"progress": progress, "events": events})
        if not reply.is_success:
            raise LeaseLost(f"heartbeat answered HTTP {reply.status_code}")
        parsed = parse_heartbeat_reply(reply.json() if reply.content else {})
        self._redactor.remember(parsed.access_token)
        return parsed

    def complete(self, task_id: str, output_ids: list[str], meta: dict[str, Any]) -> None:
        self._report(task_path(task_id, "complete"), {"output_cids": output_ids, "meta": meta})

    def fail(self, task_id: str, reason: str, details: dict[str, Any] | None) -> None:
        if details is not None and json_size(details) > PAYLOAD_MAX_BYTES:
            details = None
        # redacted before the cut, which could otherwise leave part of a secret
        reason = truncate_utf8(self._redactor.redact(reason), REASON_MAX_BYTES)
        self._report(task_path(task_id, "fail"), {"reason": reason, "details": details})

    def _report(self, path: str, body: dict[str, Any]) -> None:
        reply = self._post(path, body)
        if not reply.is_success:
            log.error("DMS refused %s: HTTP %s %s", path, reply.status_code, reply.text[:300])

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST with retries on network errors and transient statuses; other statuses are returned."""

        body = self._redactor.scrub(body)

        def attempt() -> httpx.Response:
            reply = self._send("POST", path, json=body)
            if is_retryable_status(reply.status_code):
                reply.raise_for_status()
            return reply

        return with_retries(attempt, what=f"POST {path}", backoff=self._backoff, pause=time.sleep)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        token = self._tokens.token()
        reply = self._request(method, path, token, **kwargs)
        if reply.status_code == 401:
            log.info("DMS answered 401; logging in again")
            self._tokens.invalidate(token)
            reply = self._request(method, path, self._tokens.token(), **kwargs)
        return reply

    def _request(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        self._redactor.remember(token)
        return self._http.request(
            method, f"{self._base_url}{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs
        )
