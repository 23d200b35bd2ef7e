"""Runs the pipeline's external programs with their output streamed into the job log.

Every external step goes through ``run_command`` so that all of them behave alike: the child runs in
its own process group, which is killed whole when the command times out, when the pipeline is
interrupted, and after it exits (no stray workers keep the GPU or the output pipe); its output lines
are logged as they arrive; and any failure becomes a one-line ``PipelineError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """Run ``argv`` in ``cwd`` to completion; raise PipelineError unless it exits with status 0."""
    program = Path(argv[0]).name
    log.info("running: %s", shlex.join(argv))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise PipelineError(f"cannot start {program}: {exc.strerror or exc}") from exc

    last_lines: deque[str] = deque(maxlen=1)
    pump = threading.Thread(target=_log_lines, args=(process.stdout, program, last_lines), daemon=True)
    pump.start()
    try:
        status = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise PipelineError(f"{program} did not finish within {timeout_s:g} s and was killed") from None
    finally:
        _kill_group(process)
        pump.join()
    if status != 0:
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        detail = f": {last_lines[0]}" if last_lines else ""
        raise PipelineError(f"{program} {how}{detail}")


def _log_lines(stream: IO[str], program: str, last_lines: deque[str]) -> None:
    with stream:
        for raw in stream:
            line = raw.rstrip()
            if line:
                log.info("[%s] %s", program, line)
                last_lines.append(line)


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the child's whole process group; its leader's pid is the group id."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
