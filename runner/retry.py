"""Bounded retries with jittered exponential backoff, shared by every HTTP client of the node."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Backoff:
    """Delays grow as initial·2ⁿ up to cap, each scaled by a random factor in [0.5, 1] to spread peers."""

    initial_secs: float
    cap_secs: float
    attempts: int

    def delay(self, failures: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """The pause after the n-th consecutive failure (n ≥ 1)."""
        return min(self.cap_secs, self.initial_secs * 2 ** max(0, failures - 1)) * uniform(0.5, 1.0)


class TransientError(Exception):
    """A failure that a server is unlikely to repeat, though it is not an HTTP error status."""


class RetriesExhausted(Exception):
    """The last error of an operation that kept failing with retryable errors."""

    def __init__(self, what: str, attempts: int, last_error: Exception):
        super().__init__(f"{what} failed after {attempts} attempts: {describe_error(last_error)}")
        self.last_error = last_error


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def is_retryable(error: Exception) -> bool:
    """Network trouble, timeouts, 408, 429 and 5xx are worth another try; anything else is final."""
    if isinstance(error, httpx.HTTPStatusError):
        return is_retryable_status(error.response.status_code)
    return isinstance(error, (httpx.TransportError, TransientError))


def describe_error(error: Exception) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        request = error.request
        return f"HTTP {error.response.status_code} from {request.method} {request.url.copy_with(query=None)}"
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    if isinstance(error, RetriesExhausted):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def with_retries(
    operation: Callable[[], T],
    *,
    what: str,
    backoff: Backoff,
    pause: Callable[[float], None],
) -> T:
    """Run operation until it succeeds, fails for good, or backoff.attempts retryable failures occur.

    pause sleeps between attempts; it may raise to abandon the operation (cancellation).
    """
    failures = 0
    while True:
        try:
            return operation()
        except Exception as error:
            if not is_retryable(error):
                raise
            failures += 1
            if failures >= backoff.attempts:
                raise RetriesExhausted(what, failures, error) from error
            pause(backoff.delay(failures))
