"""Runs the pipeline's external programs with their output streamed into the job log.

Every external step goes through ``start_command`` (or ``run_command``, which starts one and waits
for it) so that all of them behave alike: the child runs in its own process group, which is killed
whole when the command times out, when the pipeline is interrupted, and after it exits (no stray
workers keep the GPU or the output pipe); on Linux the child is also killed when the pipeline dies
without a chance to kill it (``with_parent``); its output lines are logged as they arrive; and any
failure becomes a one-line ``PipelineError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from pipeline.errors import PipelineError
from pipeline.with_parent import tied_to_this_process

log = logging.getLogger(__name__)


class RunningCommand:
    """An external program started by ``start_command``, its output being logged as it comes."""

    def __init__(self, process: subprocess.Popen, program: str) -> None:
        self._process = process
        self._program = program
        self._last_lines: deque[str] = deque(maxlen=1)
        self._pump = threading.Thread(
            target=_log_lines, args=(process.stdout, program, self._last_lines), daemon=True
        )
        self._pump.start()

    def send_line(self, line: str) -> None:
        """Write one line to the program's stdin. A program that has gone reads nothing, and ``wait``
        reports how it ended."""
        with contextlib.suppress(OSError, ValueError):  # a broken pipe, or stdin already closed
            self._process.stdin.write(line + "\n")
            self._process.stdin.flush()

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the program to exit, then kill what is left of its process group; raise
        PipelineError unless it exited with status 0."""
        try:
            status = self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise PipelineError(
                f"{self._program} did not finish within {timeout_s:g} s and was killed"
            ) from None
        finally:
            self.kill()
            self._pump.join()
        if status != 0:
            how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            detail = f": {self._last_lines[0]}" if self._last_lines else ""
            raise PipelineError(f"{self._program} {how}{detail}")

    def kill(self) -> None:
        """Kill the program's whole process group now; its leader's pid is the group id."""
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()


def start_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    extra_env: Mapping[str, str] | None = None,
    with_stdin: bool = False,
) -> RunningCommand:
    """Start ``argv`` in ``cwd`` in its own process group. Its stdin is a pipe for ``send_line``
    when ``with_stdin``, else empty. The program is killed when the thread that starts it ends
    (``with_parent``), so start it from the thread that waits for it, or an older one."""
    program = Path(argv[0]).name
    log.info("running: %s", shlex.join(argv))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    if os.sep not in argv[0] and shutil.which(argv[0], path=env.get("PATH")) is None:
        raise PipelineError(f"cannot start {program}: not found on PATH")
    try:
        process = subprocess.Popen(
            tied_to_this_process(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise PipelineError(f"cannot start {program}: {exc.strerror or exc}") from exc
    return RunningCommand(process, program)


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """Run ``argv`` in ``cwd`` to completion; raise PipelineError unless it exits with status 0."""
    start_command(argv, cwd=cwd, extra_env=extra_env).wait(timeout_s)


def _log_lines(stream: IO[str], program: str, last_lines: deque[str]) -> None:
    with stream:
        for raw in stream:
            line = raw.rstrip()
            if line:
                log.info("[%s] %s", program, line)
                last_lines.append(line)
