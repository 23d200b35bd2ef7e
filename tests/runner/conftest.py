"""Fixtures: a loopback emulator, a tasks root that must end empty, and node configuration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dms_emulator import Emulator
from node_harness import node_env

from runner.config import Config, load_config


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator()
    yield emu
    emu.close()


@pytest.fixture
def tasks_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "tasks"
    yield root
    leftovers = list(root.iterdir()) if root.exists() else []
    assert leftovers == [], f"workspaces left behind: {leftovers}"


@pytest.fixture
def make_config(emulator: Emulator, tasks_root: Path, tmp_path: Path) -> Callable[..., Config]:
    def make(**overrides: str) -> Config:
        return load_config(node_env(emulator, tasks_root) | overrides, tmp_path)

    return make
