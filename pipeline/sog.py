"""Beside step 6: ``splat_rot.sog``, PlayCanvas's compressed splat, which the domain's viewer loads first.

In this process, in a thread beside convert (``splat_render.sog``: torch, on the GPU when there is
one). Best-effort: the ``.splat`` stays the fallback, so any failure, a bug included, is logged and
leaves no ``.sog``; the job goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.errors import PipelineError
from splat_render.errors import PreviewInputError
from splat_render.sog import write_sog

log = logging.getLogger(__name__)


def compress_sog(ply: Path, output: Path) -> None:
    try:
        report = write_sog(ply, output)
    except PreviewInputError:
        raise
    except Exception as exc:  # out of GPU memory, a driver error, a bug: never the job's end
        log.warning("sog: compression failed", exc_info=True)
        raise PipelineError(f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
    seconds = sum(report.stage_seconds.values())
    log.info(
        "sog: %d gaussians (SH degree %d), %.1f MB on %s in %.1f s",
        report.gaussians, report.sh_degree, report.bytes / 1e6, report.device, seconds,
    )  # fmt: skip
