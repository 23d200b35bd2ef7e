"""Bounds on one exchange with a domain server: a deadline, a minimum rate and a size cap, so that a
slow, stalled or endless server cannot hold a node or fill its disk."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx


class TransferAborted(RuntimeError):
    """A transfer broke one of its limits; retrying would likely break it again."""


@dataclass(frozen=True)
class SizeCap:
    max_bytes: int
    source: str
    """Where the cap comes from, for the error message (the setting that raises it)."""


@dataclass(frozen=True)
class TransferLimits:
    """TRANSFER_DEADLINE_SECS, TRANSFER_MIN_BYTES_PER_SEC (0: no minimum) over TRANSFER_RATE_WINDOW_SECS,
    DOWNLOAD_MAX_BYTES and DOWNLOAD_SIZE_SLACK_BYTES."""

    deadline_secs: float
    min_bytes_per_sec: float
    rate_window_secs: float
    max_bytes: int
    size_slack_bytes: int

    def download_cap(self, declared: int | None, ceiling: SizeCap | None = None) -> SizeCap:
        """An item may be its declared size plus the slack, never more than the absolute cap, nor than
        ceiling (the caller's own cap for that kind of item) when it is lower."""
        absolute = SizeCap(self.max_bytes, "DOWNLOAD_MAX_BYTES")
        if ceiling is not None and ceiling.max_bytes < absolute.max_bytes:
            absolute = ceiling
        if declared is None or declared + self.size_slack_bytes >= absolute.max_bytes:
            return absolute
        return SizeCap(
            declared + self.size_slack_bytes, f"its declared {declared} bytes + DOWNLOAD_SIZE_SLACK_BYTES"
        )


class TransferGuard:
    """Counts one request-reply exchange's bytes as they move and raises TransferAborted as soon as it is
    late, too slow over a window, or over its size cap. Bytes are counted as they move, so a peer that
    sends nothing at all is ended by the HTTP timeout instead."""

    def __init__(
        self, cap: SizeCap, limits: TransferLimits, what: str, clock: Callable[[], float] = time.monotonic
    ):
        self._cap = cap
        self._limits = limits
        self._what = what
        self._clock = clock
        self._started = clock()
        self._window_started = self._started
        self._window_bytes = 0
        self._received = 0

    def sending(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """A request body, paced: each chunk is counted as the transport asks for the next."""
        for chunk in chunks:
            self._pace(len(chunk))
            yield chunk

    def receiving(self, reply: httpx.Response) -> Iterator[bytes]:
        """The reply's body (decoded) as it arrives; a stated length over the cap fails before reading."""
        self._window_started, self._window_bytes = self._clock(), 0  # the server's think time is no drip
        stated = reply.headers.get("Content-Length", "")
        if stated.isdigit() and int(stated) > self._cap.max_bytes:
            raise self._too_large()
        for chunk in reply.iter_bytes():
            self.advance(len(chunk))
            yield chunk

    def advance(self, received: int) -> None:
        """Count bytes received."""
        self._received += received
        if self._received > self._cap.max_bytes:
            raise self._too_large()
        self._pace(received)

    def _pace(self, moved: int) -> None:
        now = self._clock()
        limits = self._limits
        if now - self._started > limits.deadline_secs:
            raise TransferAborted(
                f"{self._what} did not finish within {limits.deadline_secs:g} s (TRANSFER_DEADLINE_SECS)"
            )
        self._window_bytes += moved
        elapsed = now - self._window_started
        if not limits.min_bytes_per_sec or elapsed < limits.rate_window_secs:
            return
        if self._window_bytes < limits.min_bytes_per_sec * elapsed:
            raise TransferAborted(
                f"{self._what} moved {self._window_bytes} bytes in {elapsed:.1f} s, under the minimum of "
                f"{limits.min_bytes_per_sec:g} bytes/s (TRANSFER_MIN_BYTES_PER_SEC)"
            )
        self._window_started, self._window_bytes = now, 0

    def _too_large(self) -> TransferAborted:
        return TransferAborted(
            f"{self._what} is larger than its limit of {self._cap.max_bytes} bytes ({self._cap.source})"
        )
