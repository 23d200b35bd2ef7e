"""Keeps one lease alive while its task runs: heartbeats, token rotation, and noticing cancellation."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable
from typing import Any

from .cancel import CancelReason, CancelSignal
from .dms import DmsClient, HeartbeatReply, Lease, LeaseLost
from .progress import progress

log = logging.getLogger(__name__)

HEARTBEAT_SHARE_OF_TIME_LEFT = (0.25, 0.35)
"""The next timed heartbeat falls after this share of the lease's remaining time."""
HEARTBEAT_MIN_SECS = 0.5
HEARTBEAT_WITHOUT_EXPIRY_SECS = 30.0


def heartbeat_delay(lease_expires_at: float | None, now: float, share: float) -> float:
    if lease_expires_at is None:
        return HEARTBEAT_WITHOUT_EXPIRY_SECS
    return max(HEARTBEAT_MIN_SECS, (lease_expires_at - now) * share)


class LeaseKeeper:
    """Sends a heartbeat right away, on every progress report, and on a timer tied to the lease expiry.

    A stop from DMS or a lost lease sets the task's cancel signal; after that nothing more is sent. The
    lease is lost when DMS refuses a heartbeat, or when it expires while DMS is unreachable.
    """

    def __init__(self, dms: DmsClient, lease: Lease, cancel: CancelSignal):
        self._dms = dms
        self._task_id = lease.task.id
        self._cancel = cancel
        self._lock = threading.Lock()
        self._progress: dict[str, Any] = progress(0, "leased", "running")
        self._events: list[dict[str, Any]] = []
        self._domain_token = lease.access_token
        self._expires_at = lease.lease_expires_at
        self._next_beat_at = 0.0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self._task_id}", daemon=True)

    def start(self) -> None:
        with self._lock:
            self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._thread.join()

    def domain_token(self) -> str:
        """The domain server bearer, as last rotated by DMS."""
        return self._domain_token

    def report(
        self, new_progress: dict[str, Any] | None = None, events: Iterable[dict[str, Any]] = ()
    ) -> None:
        """Record progress and events and send them now (unchanged progress and no events: nothing)."""
        events = list(events)
        with self._lock:
            if (new_progress is None or new_progress == self._progress) and not events:
                return
            self._progress = new_progress or self._progress
            self._events += events
            self._beat()
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                due_in = self._next_beat_at - time.monotonic()
                if due_in <= 0:
                    self._beat()
                    continue
            self._wake.wait(due_in)
            self._wake.clear()

    def _beat(self) -> None:
        """Send one heartbeat unless the task is already cancelled; the caller holds the lock."""
        try:
            if self._cancel.reason is not None:
                return
            reply = self._dms.heartbeat(self._task_id, self._progress, self._events)
        except LeaseLost as exc:
            log.warning("lease lost for task %s: %s", self._task_id, exc)
            self._cancel.cancel(CancelReason.LEASE_LOST)
        except Exception as exc:  # DMS unreachable or failing: a later beat may get through in time
            log.warning("heartbeat for task %s failed: %s", self._task_id, exc)
            if self._expires_at is not None and time.time() >= self._expires_at:
                log.warning("lease of task %s expired without a heartbeat getting through", self._task_id)
                self._cancel.cancel(CancelReason.LEASE_LOST)
        else:
            self._events = []
            self._apply(reply)
        finally:
            share = random.uniform(*HEARTBEAT_SHARE_OF_TIME_LEFT)
            self._next_beat_at = time.monotonic() + heartbeat_delay(self._expires_at, time.time(), share)

    def _apply(self, reply: HeartbeatReply) -> None:
        if reply.access_token and reply.access_token != self._domain_token:
            log.info("domain access token rotated for task %s", self._task_id)
            self._domain_token = reply.access_token
        if reply.lease_expires_at is not None:
            self._expires_at = reply.lease_expires_at
        if reply.means_stop:
            log.warning(
                "DMS stopped task %s (status %r, cancel=%s)", self._task_id, reply.status, reply.cancel
            )
            self._cancel.cancel(CancelReason.STOPPED_BY_DMS)
