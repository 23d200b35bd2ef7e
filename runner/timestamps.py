"""RFC 3339 timestamps as the services write them (Z suffix, up to nanosecond fractions)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_FRACTION = re.compile(r"\.(\d+)")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch; naive timestamps are taken as UTC."""
    # Python 3.10's fromisoformat takes exactly 6 fraction digits; services send 0 to 9.
    normalized = _FRACTION.sub(
        lambda m: "." + m[1][:6].ljust(6, "0"), text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    )
    moment = datetime.fromisoformat(normalized)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def format_rfc3339(epoch_secs: float) -> str:
    return datetime.fromtimestamp(epoch_secs, tz=timezone.utc).isoformat().replace("+00:00", "Z")
