"""Real captures thinned into fixtures (``tests/fixtures/captures``), loaded for CPU tests.

Each fixture holds a splat trained by ``run.py`` on the GPU machine from a public capture (its
``SOURCE.md`` says which, under which licence), thinned to the gaussians its training views saw most
and reduced to SH degree 0; the training cameras in capture order; what the full splat's
observation pass measured (so that CPU tests need not render every training view); and a few
training images at low resolution. ``scripts/capture-check`` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from splat_render.analysis import Observation
from splat_render.gaussians import Gaussians
from splat_render.ply import read_gaussians
from splat_render.views import pinhole_cameras

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "captures"
PLYS = FIXTURES.parent / "plys"  # real 3DGS PLYs from other tools, without cameras (their SOURCE.md)


@dataclass(frozen=True)
class RealCapture:
    name: str
    gaussians: Gaussians
    c2w: np.ndarray  # [M,3,4] training cameras in capture order, OpenGL, training frame
    focal: float
    width: int
    height: int
    observation: Observation
    photos: dict[int, np.ndarray]  # training camera index → its image, small, RGB uint8

    def cameras(self):
        """The training cameras as nerfstudio ``Cameras``."""
        c2w = torch.as_tensor(self.c2w, dtype=torch.float32)
        return pinhole_cameras(c2w, self.focal, self.width, self.height)


def load(name: str) -> RealCapture:
    folder = FIXTURES / name
    data = np.load(folder / "capture.npz")
    photos = {
        int(i): np.asarray(Image.open(folder / f"view_{int(i):04d}.jpg").convert("RGB"))
        for i in data["views"]
    }
    return RealCapture(
        name=name,
        gaussians=read_gaussians(folder / "splat.ply"),
        c2w=data["c2w"].astype(np.float64),
        focal=float(np.median(data["fx"])),
        width=int(data["width"][0]),
        height=int(data["height"][0]),
        observation=Observation(
            data["weight"].astype(np.float64), data["depth"].astype(np.float64), float(data["near_depth"])
        ),
        photos=photos,
    )
