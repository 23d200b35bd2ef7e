"""Step 7: the orbit preview video, rendered by ``splat_render`` in a child process beside the others.

A child process, not an import: the renderer loads CUDA, nerfstudio and a video encoder, and a crash
or hang there must not take the job down with it.

Most of a fresh renderer's time goes to imports (torch, torchvision, nerfstudio: 10–14 s on the GPU
machine, against 2–3 s to load, render and encode), and none of them needs the trained model. So the
renderer starts in standby as training starts and imports (and warms the GPU up) while training
runs. When training has finished it is sent one line on its stdin; it then loads the checkpoint,
renders and encodes while the job exports, rotates and converts, and the job waits for both. Its
time limit counts from that line. Its process group is killed when it overruns, when the job fails
or is cancelled, and when the job ends; if the pipeline dies without unwinding, the renderer reads
the end of its stdin instead and exits without rendering. Any failure is a missing preview, never
a failed job.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

from pipeline.commands import RunningCommand, start_command
from pipeline.errors import PipelineError
from pipeline.layout import CONFIG, COVERAGE, POSTER, PREVIEW, QUALITY

DEFAULT_RENDERER = (sys.executable, "-m", "splat_render", "preview")
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # where ``splat_render`` lives when not installed
# Each file the renderer writes, by the option that names it.
PREVIEW_FILES = {"--output": PREVIEW, "--poster": POSTER}
# The quality report and coverage picture: best-effort within the preview (it may finish without them).
REPORT_FILES = {"--quality-out": QUALITY, "--coverage-out": COVERAGE}
GO_AHEAD = "render"  # the line that tells a renderer in standby that the run is finished


def renderer_environment() -> dict[str, str]:
    """What the renderer's environment needs besides the job's: ``splat_render`` importable."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}


def preview_command(root: Path, renderer: tuple[str, ...]) -> list[str]:
    named = {**PREVIEW_FILES, **REPORT_FILES}
    files = [arg for option, path in named.items() for arg in (option, str(root / path))]
    return [*renderer, "--config", str(root / CONFIG), *files, "--standby"]


class PreviewRenderer:
    """The renderer process of one job: started early in standby, told when to render, stopped at the end."""

    def __init__(self, root: Path, renderer: tuple[str, ...], timeout_s: float) -> None:
        self._root = root
        self._command = preview_command(root, renderer)
        self._timeout_s = timeout_s
        self._running: RunningCommand | None = None
        self._stopped = False
        self._lock = threading.Lock()  # render() runs in a stage's thread; stop() may come meanwhile

    def __enter__(self) -> PreviewRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def warm_up(self) -> None:
        """Start the renderer in standby. A renderer that cannot start is ``render``'s failure to
        report, not the failure of the stage that is starting."""
        with contextlib.suppress(PipelineError):
            self._start()

    def render(self) -> None:
        """Have the renderer render the finished run and wait for it; PipelineError if it fails."""
        self._start()
        self._running.send_line(GO_AHEAD)
        self._running.wait(self._timeout_s)

    def stop(self) -> None:
        """Kill the renderer's process group, if it was started; none starts afterwards."""
        with self._lock:
            self._stopped = True
            running = self._running
        if running is not None:
            running.kill()

    def _start(self) -> None:
        with self._lock:
            if self._stopped:
                raise PipelineError("the job ended before the preview started")
            if self._running is None:
                self._running = start_command(
                    self._command, cwd=self._root, extra_env=renderer_environment(), with_stdin=True
                )
