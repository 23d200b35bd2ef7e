"""URL pieces built from ids other parties chose: one path segment each, and one server per token."""

from __future__ import annotations

from urllib.parse import quote

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}


def path_segment(text: str) -> str:
    """text as exactly one path segment: slashes, '?' and '#' are escaped, and so are the dots of '.'
    and '..', which URL normalisation would otherwise resolve into another path."""
    segment = quote(text, safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def same_server(url: str, server: str) -> bool:
    """Whether url is on server: the same scheme, host and port (a scheme's default port included)."""
    try:
        a, b = httpx.URL(url), httpx.URL(server)
    except httpx.InvalidURL:
        return False
    return bool(a.host) and (a.scheme, a.host, _port(a)) == (b.scheme, b.host, _port(b))


def _port(url: httpx.URL) -> int | None:
    return url.port or _DEFAULT_PORTS.get(url.scheme)
