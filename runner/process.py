"""Runs run.py in its own process group with only the environment it needs, streams its output with
the node's secrets redacted, and takes the whole group down on cancel (and, on Linux, run.py down with
the node should the node be killed outright)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipeline.with_parent import tied_to_this_process

from .cancel import CancelSignal
from .redaction import Redactor

log = logging.getLogger(__name__)

OUTPUT_TAIL_LINES = 200
LINE_MAX_CHARS = 2000
LINE_READ_BYTES = 64 * 1024
"""At most this much of one output line is read (and redacted before it is cut to LINE_MAX_CHARS);
the rest of an overlong line is skipped, so output without newlines cannot fill the node's memory."""
POLL_SECS = 0.1


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    output_tail: tuple[str, ...]


def pipeline_command(script: Path, domain_id: str, job_id: str, job_root: Path) -> list[str]:
    return [
        sys.executable,
        str(script),
        "--domain_id",
        domain_id,
        "--job_id",
        job_id,
        "--job_root_path",
        str(job_root),
        "--log_level",
        "info",
    ]


def pipeline_environment(
    environ: Mapping[str, str], withheld: frozenset[str], redactor: Redactor
) -> dict[str, str]:
    """The node's environment less its own settings and any variable holding a secret's value: what
    run.py and every program it starts may see."""
    kept = {
        name: value for name, value in environ.items() if name not in withheld and not redactor.reveals(value)
    }
    return kept | {"PYTHONUNBUFFERED": "1"}


def run_process(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    cancel: CancelSignal,
    on_line: Callable[[str], None],
    kill_grace_secs: float,
    redactor: Redactor,
) -> ProcessResult:
    """Run command to the end, or until cancel is set (then raise Cancelled once the group is gone).

    Its output lines are redacted as they are read, before anything cuts, logs or reports them."""
    process = subprocess.Popen(
        tied_to_this_process(command),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
    reader = threading.Thread(
        target=_pump_lines,
        args=(process.stdout, tail, on_line, redactor),
        name=f"output-{process.pid}",
        daemon=True,
    )
    reader.start()
    try:
        while process.poll() is None and not cancel.wait(POLL_SECS):
            pass
    finally:
        stop_process_group(process, kill_grace_secs)
        reader.join()
    cancel.check()
    return ProcessResult(returncode=process.returncode, output_tail=tuple(tail))


def stop_process_group(process: subprocess.Popen[bytes], grace_secs: float) -> None:
    """SIGTERM every process of the child's group, SIGKILL whatever is left after grace_secs, reap."""
    group = process.pid  # start_new_session made the child its group leader
    process.poll()
    if _group_alive(group):
        log.info("terminating process group %d", group)
        _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + grace_secs
        while time.monotonic() < deadline and (process.poll() is None or _group_alive(group)):
            time.sleep(POLL_SECS / 2)
        if _group_alive(group):
            log.warning("process group %d outlived SIGTERM by %.0f s; killing it", group, grace_secs)
            _signal_group(group, signal.SIGKILL)
    process.wait()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(group: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(group, signum)


def _bounded_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The stream's lines, each cut to its first LINE_READ_BYTES."""
    while raw := stream.readline(LINE_READ_BYTES):
        if not raw.endswith(b"\n"):
            while (rest := stream.readline(LINE_READ_BYTES)) and not rest.endswith(b"\n"):
                pass
        yield raw


def _pump_lines(
    stream: IO[bytes], tail: deque[str], on_line: Callable[[str], None], redactor: Redactor
) -> None:
    with stream:
        for raw in _bounded_lines(stream):
            line = redactor.redact(raw.decode(errors="replace").rstrip("\r\n"))[:LINE_MAX_CHARS]
            tail.append(line)
            log.info("run.py: %s", line)
            try:
                on_line(line)
            except Exception:
                log.exception("handling run.py output failed")
