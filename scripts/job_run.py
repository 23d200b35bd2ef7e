"""For the GPU harnesses in this folder (never the product): writing a scan's Frames.mp4, and running the
real run.py on it, timing each step."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def run_pipeline(
    job: Path, log_path: Path, iterations: int, preview_timeout: float, env: dict[str, str]
) -> tuple[int, dict[str, float]]:
    """Run run.py, echoing its output; return its exit status and each step's seconds.

    The steps' own times come from run.py's "<step>: done in <s> s" lines (the preview runs beside
    export, rotate and convert); "after training" is the wall from the end of training (the
    preview's progress line) to the end of run.py.
    """
    command = [
        sys.executable, str(REPO / "run.py"),
        "--job_root_path", str(job),
        "--train-iterations", str(iterations),
        "--preview-timeout", str(preview_timeout),
    ]  # fmt: skip
    print("$", " ".join(command), flush=True)
    seconds: dict[str, float] = {}
    training_ended = None
    with (
        open(log_path, "w") as log,
        subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process,
    ):
        for line in process.stdout:
            log.write(line)
            sys.stdout.write(line)
            if line.startswith("[PROGRESS] stage=preview "):
                training_ended = time.monotonic()
            if done := re.search(r" INFO (\w+): done in ([0-9.]+) s$", line.rstrip()):
                seconds[done.group(1)] = float(done.group(2))
        status = process.wait()
    if training_ended is not None:
        seconds["after training (wall)"] = round(time.monotonic() - training_ended, 1)
    return status, seconds


def write_video(path: Path, frames: Iterable[np.ndarray], crf: int, fps: int = 30) -> None:
    """RGB frames [H,W,3] uint8 as an H.264 Frames.mp4, the recording a scan arrives with."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf)})
        for index, frame in enumerate(frames):
            if index == 0:
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
