"""Step 7: the preview video and its poster, rendered by ``splat_render`` in a child process.

A child process, not an import: the renderer loads CUDA, nerfstudio and a video encoder, and a crash
or hang there must not take the job down with it. The command is killed with its process group when
it overruns its time limit; the caller treats any failure as a missing preview, never a failed job.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.commands import run_command
from pipeline.layout import CONFIG, POSTER, PREVIEW, SPLAT_PLY

DEFAULT_RENDERER = (sys.executable, "-m", "splat_render", "preview")
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # where ``splat_render`` lives when not installed


def preview_command(root: Path, renderer: tuple[str, ...]) -> list[str]:
    return [
        *renderer,
        "--config", str(root / CONFIG),
        "--ply", str(root / SPLAT_PLY),
        "--output", str(root / PREVIEW),
        "--poster", str(root / POSTER),
    ]  # fmt: skip


def render_preview(root: Path, renderer: tuple[str, ...], timeout_s: float) -> None:
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    run_command(
        preview_command(root, renderer), cwd=root, timeout_s=timeout_s, extra_env={"PYTHONPATH": python_path}
    )
