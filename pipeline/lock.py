"""One run.py per job root: two would remove and rewrite each other's files.

The lock is ``flock`` on ``.pipeline/lock`` under the job root, held for the whole job. The kernel
drops it when the process ends, however it ends, so a killed run never blocks the next one and there
is no stale lock to clean up. The file holds the holder's pid, for the message of a run turned away;
the programs the job starts do not inherit it (Python opens files non-inheritable).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.layout import LOCK_FILE


@contextlib.contextmanager
def job_lock(root: Path) -> Iterator[None]:
    """Hold the job root's lock; a one-line PipelineError at once when another run holds it."""
    if not root.is_dir():
        raise PipelineError(f"job root not found: {root}")
    path = root / LOCK_FILE
    try:
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise PipelineError(f"cannot create the job's lock {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise PipelineError(
                f"another run.py (pid {holder}) is working on {root}: wait for it to end, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
