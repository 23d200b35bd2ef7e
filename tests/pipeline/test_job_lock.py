"""One run.py per job root: a second one is turned away before it touches anything."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import run
from pipeline import layout

REPO = Path(run.__file__).resolve().parent


def start_job(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "--job_root_path", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def job_in_training(root: Path, fake_tools) -> Iterator[subprocess.Popen]:
    """A run.py busy in a training that never ends; killed, with its training, on the way out."""
    fake_tools.set_mode("ns-train", "hang")
    job = start_job(root)
    try:
        deadline = time.monotonic() + 60
        while "ns-train" not in fake_tools.tools_called():
            assert time.monotonic() < deadline and job.poll() is None, "training never started"
            time.sleep(0.05)
        yield job
    finally:
        job.kill()
        job.wait()
        for call in fake_tools.calls():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(call["pid"], signal.SIGKILL)


def test_a_second_run_on_the_same_job_root_exits_at_once_on_one_line(job_root, fake_tools, fake_preview):
    fake_preview("ok")
    with job_in_training(job_root, fake_tools) as first:
        frames = sorted(p.name for p in (job_root / layout.FRAMES).iterdir())

        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, str(REPO / "run.py"), "--job_root_path", str(job_root)],
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert second.returncode == 1
        assert len(second.stderr.splitlines()) == 1, second.stderr
        assert f"another run.py (pid {first.pid}) is working on {job_root}" in second.stderr
        assert "[PROGRESS]" not in second.stdout
        assert time.monotonic() - started < 30
        assert first.poll() is None  # the first goes on, its files untouched
        assert sorted(p.name for p in (job_root / layout.FRAMES).iterdir()) == frames
        assert fake_tools.tools_called() == ["ns-process-data", "ns-train"]


def test_a_killed_run_leaves_the_job_root_free(job_root, fake_tools, fake_preview, capsys):
    """The kernel drops the lock with the process: no stale lock file to clean up by hand."""
    fake_preview("ok")
    with job_in_training(job_root, fake_tools) as first:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)

    fake_tools.set_mode("ns-train", "ok")
    assert run.main(["--job_root_path", str(job_root)]) == 0, capsys.readouterr().err
