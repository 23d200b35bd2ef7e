"""Task workspaces under TASKS_ROOT: created fresh per task, marked, and swept when stale."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = ".splatter-workspace"
"""Only folders carrying this file are ever deleted, so a mistaken TASKS_ROOT cannot lose other data."""
COMPONENT_MAX_CHARS = 128
_SAFE_COMPONENT = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{COMPONENT_MAX_CHARS - 1}}}")
SAFE_COMPONENT_RULE = (
    f"1 to {COMPONENT_MAX_CHARS} letters, digits, '.', '_' or '-', starting with a letter or digit"
)


class WorkspaceError(RuntimeError):
    """The task's workspace cannot be made, its id being no plain folder name."""


def is_safe_component(name: str) -> bool:
    """Whether name is one path component that cannot climb out, hide, or carry control characters."""
    return _SAFE_COMPONENT.fullmatch(name) is not None


def create_workspace(tasks_root: Path, task_id: str) -> Path:
    """A fresh, marked `{tasks_root}/{task_id}`; ids that are not one safe component are refused."""
    if not is_safe_component(task_id):
        raise WorkspaceError(
            f"task id {task_id!r} cannot name a workspace folder: it must be {SAFE_COMPONENT_RULE}"
        )
    root = tasks_root.resolve() / task_id
    remove_workspace(root)
    try:
        root.mkdir(parents=True)
        (root / MARKER).touch()
    except OSError as exc:
        raise WorkspaceError(f"cannot create the workspace {root}: {exc.strerror or exc}") from None
    return root


def remove_workspace(root: Path) -> None:
    """Delete root if it is a marked workspace folder itself (a link to one is left alone)."""
    if root.is_dir() and not root.is_symlink() and (root / MARKER).is_file():
        shutil.rmtree(root, ignore_errors=True)
    elif root.exists() or root.is_symlink():
        log.warning("not removing %s: it is not a task workspace", root)


def sweep_stale_workspaces(tasks_root: Path) -> int:
    """Remove the workspaces a previous run of the node left behind; returns how many."""
    if not tasks_root.is_dir():
        return 0
    stale = [entry for entry in tasks_root.iterdir() if (entry / MARKER).is_file() and not entry.is_symlink()]
    for entry in stale:
        log.info("removing stale workspace %s", entry)
        remove_workspace(entry)
    return len(stale)
