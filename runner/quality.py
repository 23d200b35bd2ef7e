"""The quality report run.py wrote (``refined/splatter/quality.json``), read for DMS: its figures go
into the final progress and the complete call's metadata.

The file is the pipeline's, and like every file of a task it is not trusted: a link, a file larger
than ``MAX_FILE_BYTES``, anything but a JSON object of finite numbers, or figures that would not
fit ``MAX_FIGURES_BYTES`` once the per-view lists are left out is skipped with a note, never a
failed task.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dms import json_size

QUALITY = Path("refined/splatter/quality.json")
MAX_FILE_BYTES = 256 * 1024
MAX_FIGURES_BYTES = 16 * 1024  # a quarter of a progress payload
PER_VIEW = "per_view"  # the lists of per-view figures, left out of what DMS gets


@dataclass(frozen=True)
class QualityFigures:
    figures: dict[str, Any] | None
    note: str


def read_quality(job_root: Path) -> QualityFigures:
    """The report's figures without its per-view lists, or None and why."""
    path = job_root / QUALITY
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return QualityFigures(None, f"run.py produced no {QUALITY}")
    except OSError as exc:
        return QualityFigures(None, f"{QUALITY} cannot be read ({exc.strerror or exc})")
    with os.fdopen(descriptor, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        return QualityFigures(None, f"{QUALITY} is larger than {MAX_FILE_BYTES} bytes; left out")
    try:
        report = json.loads(data, parse_constant=_refuse)
        figures = _without_per_view(report)
    except (ValueError, RecursionError):
        return QualityFigures(None, f"{QUALITY} is not valid JSON; left out")
    if not isinstance(figures, dict):
        return QualityFigures(None, f"{QUALITY} is not a JSON object; left out")
    if json_size(figures) > MAX_FIGURES_BYTES:
        return QualityFigures(None, f"{QUALITY}'s figures exceed {MAX_FIGURES_BYTES} bytes; left out")
    return QualityFigures(figures, "quality report read")


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _without_per_view(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_per_view(item) for key, item in value.items() if key != PER_VIEW}
    if isinstance(value, list):
        return [_without_per_view(item) for item in value]
    return value
