"""Task workspaces under TASKS_ROOT: created fresh per task, marked, and swept when stale."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = ".splatter-workspace"
"""Only folders carrying this file are ever deleted, so a mistaken TASKS_ROOT cannot lose other data."""


def create_workspace(tasks_root: Path, task_id: str) -> Path:
    if not task_id or Path(task_id).name != task_id or task_id in (".", ".."):
        raise ValueError(f"task id {task_id!r} cannot name a workspace folder")
    root = (tasks_root / task_id).resolve()
    if root.exists():
        remove_workspace(root)
    root.mkdir(parents=True)
    (root / MARKER).touch()
    return root


def remove_workspace(root: Path) -> None:
    if (root / MARKER).is_file():
        shutil.rmtree(root, ignore_errors=True)
    elif root.exists():
        log.warning("not removing %s: it is not a task workspace", root)


def sweep_stale_workspaces(tasks_root: Path) -> int:
    """Remove the workspaces a previous run of the node left behind; returns how many."""
    if not tasks_root.is_dir():
        return 0
    stale = [entry for entry in tasks_root.iterdir() if (entry / MARKER).is_file()]
    for entry in stale:
        log.info("removing stale workspace %s", entry)
        remove_workspace(entry)
    return len(stale)
