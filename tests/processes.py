"""Whether a process the tests started (or saw started) is still running."""

from __future__ import annotations

import time
from pathlib import Path


def is_running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent that may never reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def outlived_the_kill(pid: int, grace_s: float = 2.0) -> bool:
    """Still running ``grace_s`` after it was killed (dying takes the kernel a few milliseconds)."""
    deadline = time.monotonic() + grace_s
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return is_running(pid)
