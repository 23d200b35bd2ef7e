"""Shared fixtures: one small synthetic splatfacto run per test session, copied where a test may change it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from splat_render.synthetic import SceneSpec, SyntheticRun, write_synthetic_run

SMALL_SCENE = SceneSpec(gaussians=3000, seed=7)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run with -m gpu on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory) -> SyntheticRun:
    """A pristine synthetic run; treat as read-only (use ``job_root_copy`` to modify)."""
    return write_synthetic_run(tmp_path_factory.mktemp("pristine") / "job", SMALL_SCENE)


@pytest.fixture
def job_root_copy(synthetic_run, tmp_path) -> Path:
    """A private copy of the synthetic job root, at a different absolute path."""
    return Path(shutil.copytree(synthetic_run.job_root, tmp_path / "moved" / "job"))


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
