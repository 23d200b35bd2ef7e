"""One cancellation signal per task, shared by the heartbeat thread, the job and the signal handler."""

from __future__ import annotations

import threading
from enum import Enum


class CancelReason(Enum):
    STOPPED_BY_DMS = "cancelled by DMS"
    LEASE_LOST = "lease lost"
    SHUTDOWN = "node shutting down"


class Cancelled(Exception):
    def __init__(self, reason: CancelReason):
        super().__init__(reason.value)
        self.reason = reason


class CancelSignal:
    """Set once; the first reason wins. Waits and checks raise Cancelled so work unwinds promptly."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason: CancelReason | None = None

    @property
    def reason(self) -> CancelReason | None:
        return self._reason

    def cancel(self, reason: CancelReason) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason
                self._event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to seconds; True when cancelled meanwhile."""
        return self._event.wait(seconds)

    def check(self) -> None:
        if self._reason is not None:
            raise Cancelled(self._reason)

    def pause(self, seconds: float) -> None:
        self.wait(seconds)
        self.check()
