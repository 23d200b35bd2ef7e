"""Keeps the node's secrets out of what it tells others: the values are known, so they are replaced
wherever they appear, whatever printed them."""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
REMEMBERED_TOKENS = 32
"""Tokens change with every lease; the most recent ones are the ones that can still be used."""


class Redactor:
    """Replaces the node's secrets (fixed at start) and the tokens it was handed since (remembered as
    they arrive) by REDACTED, in any letter case."""

    def __init__(self, secrets: Iterable[str]):
        self._secrets = tuple(s for s in secrets if s)
        self._tokens: deque[str] = deque(maxlen=REMEMBERED_TOKENS)
        self._lock = threading.Lock()
        self._pattern = self._compile()

    def remember(self, token: str | None) -> None:
        """Treat token as a secret from now on."""
        with self._lock:
            if token and token not in self._tokens:
                self._tokens.append(token)
                self._pattern = self._compile()

    def redact(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern else text

    def reveals(self, text: str) -> bool:
        return bool(self._pattern and self._pattern.search(text))

    def scrub(self, payload: Any) -> Any:
        """A JSON-like payload with every string in it redacted."""
        if isinstance(payload, str):
            return self.redact(payload)
        if isinstance(payload, dict):
            return {key: self.scrub(value) for key, value in payload.items()}
        if isinstance(payload, list | tuple):
            return [self.scrub(value) for value in payload]
        return payload

    def _compile(self) -> re.Pattern[str] | None:
        values = sorted({*self._secrets, *self._tokens}, key=len, reverse=True)  # longest first
        return re.compile("|".join(map(re.escape, values)), re.IGNORECASE) if values else None
