"""nerfstudio's own exporter, the reference that splat.ply is compared with."""

from __future__ import annotations

import sys
import types

import pytest


def stand_in_attribute(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (), {})


@pytest.fixture(scope="session")
def ns_exporter():
    """nerfstudio's ``ExportGaussianSplat``. Its module imports open3d at the top, which the
    gaussian-splat exporter never uses and which needs system libraries a CPU test machine may lack:
    stand it in when absent."""
    try:
        import open3d  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("open3d")
        stand_in.__getattr__ = stand_in_attribute
        sys.modules["open3d"] = stand_in
    from nerfstudio.scripts.exporter import ExportGaussianSplat

    return ExportGaussianSplat
