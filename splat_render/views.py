"""Cameras as splatfacto hands them to gsplat: nerfstudio ``Cameras`` in, view matrices, intrinsics and
per-camera colours out.

Every renderer of the project (gsplat on CUDA, the CPU reference, the observation pass) goes through
these few functions, so they all see a camera exactly as splatfacto's ``get_outputs`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from splat_render.gaussians import Gaussians

if TYPE_CHECKING:  # nerfstudio is imported only where a camera batch is built
    from nerfstudio.cameras.cameras import Cameras

NEAR_PLANE = 0.01
FAR_PLANE = 1e10


def pinhole_cameras(
    c2w: torch.Tensor,  # [N,3,4] OpenGL camera-to-world
    focal: float,
    width: int,
    height: int,
) -> Cameras:
    """A batch of identical pinhole cameras (principal point at the image centre) along ``c2w``."""
    from nerfstudio.cameras.cameras import Cameras

    return Cameras(
        camera_to_worlds=c2w.to(torch.float32),
        fx=float(focal),
        fy=float(focal),
        cx=width / 2,
        cy=height / 2,
        width=int(width),
        height=int(height),
    )


def viewmats_from_c2w(c2w: torch.Tensor) -> torch.Tensor:
    """OpenGL camera-to-world [C,3,4] → OpenCV world-to-camera [C,4,4], as splatfacto's get_viewmat."""
    rotation = c2w[:, :3, :3] * torch.tensor([1.0, -1.0, -1.0], device=c2w.device, dtype=c2w.dtype)
    rotation_inv = rotation.transpose(1, 2)
    translation_inv = -torch.bmm(rotation_inv, c2w[:, :3, 3:4])
    viewmats = torch.zeros(c2w.shape[0], 4, 4, device=c2w.device, dtype=c2w.dtype)
    viewmats[:, :3, :3] = rotation_inv
    viewmats[:, :3, 3:4] = translation_inv
    viewmats[:, 3, 3] = 1.0
    return viewmats


def gsplat_cameras(cameras: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """World-to-camera [C,4,4] and intrinsics [C,3,3] of a batch of cameras, float32, on their device."""
    viewmats = viewmats_from_c2w(cameras.camera_to_worlds.reshape(-1, 3, 4).to(torch.float32))
    Ks = cameras.get_intrinsics_matrices().reshape(-1, 3, 3).to(viewmats.device, torch.float32)
    return viewmats, Ks


def image_size(cameras: Cameras) -> tuple[int, int]:
    """(width, height) shared by a batch of cameras; a one-line error when they differ."""
    widths, heights = cameras.width.unique(), cameras.height.unique()
    if len(widths) != 1 or len(heights) != 1:
        raise ValueError(f"cameras of one batch must share an image size, got widths {widths.tolist()}")
    return int(widths.item()), int(heights.item())


def camera_centers(viewmats: torch.Tensor) -> torch.Tensor:
    """World positions [C,3] of the cameras of world-to-camera matrices."""
    rotation = viewmats[:, :3, :3]
    return -torch.bmm(rotation.transpose(1, 2), viewmats[:, :3, 3:4])[..., 0]


def sh_colors(gaussians: Gaussians, camera_centers: torch.Tensor, evaluate: Callable) -> torch.Tensor:
    """Per-camera RGB [C,N,3] from SH, with gsplat's view directions and its +0.5, clamp_min(0)."""
    coeffs = gaussians.sh_coeffs()
    colors = [evaluate(gaussians.sh_degree, gaussians.means - center, coeffs) for center in camera_centers]
    return torch.clamp_min(torch.stack(colors) + 0.5, 0.0)
