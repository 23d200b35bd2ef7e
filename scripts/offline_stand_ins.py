"""Stand-ins that let nerfstudio's command-line tools run on an offline machine, for the harnesses
in this folder (``gpu-pipeline-check``, ``tail-bench``) and never for the product.

Offline GPU and CI machines lack things the tools expect but never use here: ``ffmpeg`` and
``colmap`` executables (ns-process-data checks that they run), modules ``open3d`` (splatfacto reads
its initial point cloud with it; ns-export imports it), ``pymeshlab``, ``xatlas`` and ``trimesh``
(ns-export imports them), and an LPIPS metric that needs no downloaded weights (splatfacto builds one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

STAND_IN_MODULES = ("open3d", "pymeshlab", "xatlas", "trimesh")

LPIPS_STAND_IN = '''
"""Test-harness stand-in: splatfacto's LPIPS metric without downloading AlexNet weights."""
import importlib.abc
import importlib.machinery
import sys


class _LpipsStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == "torchmetrics.image.lpip" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        import torch

        class LearnedPerceptualImagePatchSimilarity(torch.nn.Module):
            def __init__(self, *args, **kwargs):
                super().__init__()

            def forward(self, *args, **kwargs):
                return torch.zeros(())

        module.LearnedPerceptualImagePatchSimilarity = LearnedPerceptualImagePatchSimilarity


sys.meta_path.insert(0, _LpipsStandIn())
'''
MODULE_STAND_IN = '''
"""Test-harness stand-in for a module that is imported but not used here."""


class _Anything:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Anything()

    def __getattr__(self, name):
        return _Anything()


def __getattr__(name):
    return _Anything()
'''
# splatfacto reads its initial point cloud (ns-process-data's sparse_pc.ply) with open3d.
OPEN3D_READER = """

class _PointCloud:
    def __init__(self, points, colors):
        self.points, self.colors = points, colors


def _read_point_cloud(path, *args, **kwargs):
    import numpy as np
    from plyfile import PlyData

    vertex = PlyData.read(str(path))["vertex"]
    points = np.stack([vertex[k] for k in ("x", "y", "z")], axis=1).astype(np.float64)
    if "red" not in vertex.data.dtype.names:
        return _PointCloud(points, np.zeros_like(points))
    colors = np.stack([vertex[k] for k in ("red", "green", "blue")], axis=1) / 255.0
    return _PointCloud(points, colors)


class io:
    read_point_cloud = staticmethod(_read_point_cloud)
"""


def stand_ins(folder: Path) -> dict[str, str]:
    """Environment additions giving nerfstudio's CLIs what an offline machine lacks."""
    python_dir, bin_dir = folder / "python", folder / "bin"
    python_dir.mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(parents=True, exist_ok=True)
    (python_dir / "sitecustomize.py").write_text(textwrap.dedent(LPIPS_STAND_IN))
    for module in STAND_IN_MODULES:
        importable = (
            subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0
        )
        if not importable:
            (python_dir / module).mkdir(exist_ok=True)
            reader = OPEN3D_READER if module == "open3d" else ""
            (python_dir / module / "__init__.py").write_text(textwrap.dedent(MODULE_STAND_IN) + reader)
            print(f"stand-in module: {module}")
    for program, output in (("ffmpeg", "ffmpeg version stand-in"), ("colmap", "COLMAP stand-in")):
        if shutil.which(program) is None:
            (bin_dir / program).write_text(f"#!/bin/sh\necho '{output}'\nexit 0\n")
            (bin_dir / program).chmod(0o755)
            print(f"stand-in program: {program}")
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(python_dir), os.environ.get("PYTHONPATH")])),
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
    }
