"""What the node tells DMS while a task runs: progress payloads, events, and run.py's progress lines."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .dms import PAYLOAD_MAX_BYTES, json_size
from .timestamps import format_rfc3339

PYTHON_BAND = (35, 80)
"""run.py's own 0..100 is reported inside this band of the task's progress."""

_PROGRESS_LINE = re.compile(r"^\[PROGRESS\]\s+(?P<fields>.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class PipelineProgress:
    step: str
    percent: float


def parse_progress_line(line: str) -> PipelineProgress | None:
    """`[PROGRESS] stage=train pct=40` → PipelineProgress("train", 40); anything else → None."""
    match = _PROGRESS_LINE.match(line.strip())
    if not match:
        return None
    fields = dict(_FIELD.findall(match["fields"]))
    try:
        percent = float(fields["pct"])
    except (KeyError, ValueError):
        return None
    return PipelineProgress(step=fields.get("stage", "python"), percent=min(100.0, max(0.0, percent)))


def task_percent(pipeline_percent: float) -> int:
    low, high = PYTHON_BAND
    return round(low + (high - low) * pipeline_percent / 100)


def progress(percent: int, stage: str, status: str, **details: Any) -> dict[str, Any]:
    return {"progress": percent, "stage": stage, "status": status, **details}


def event(level: str, stage: str, message: str, **details: Any) -> dict[str, Any]:
    return {
        "level": level,
        "stage": stage,
        "message": message,
        "time": format_rfc3339(time.time()),
        **details,
    }


def recent_lines_within(lines: Iterable[str], max_bytes: int) -> list[str]:
    """The most recent lines whose JSON encoding fits in max_bytes, oldest first."""
    kept: list[str] = []
    used = 2  # the list brackets
    for line in reversed(list(lines)):
        cost = json_size(line) + 1
        if used + cost > max_bytes:
            break
        kept.append(line)
        used += cost
    return kept[::-1]


def failure_event(stage: str, message: str, output_tail: list[str]) -> dict[str, Any]:
    """An error event carrying as much of run.py's last output as a 64 KiB payload allows."""
    base = event("error", stage, message, output_tail=[])
    room = PAYLOAD_MAX_BYTES - json_size(base)
    return base | {"output_tail": recent_lines_within(output_tail, room)}
