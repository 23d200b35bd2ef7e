"""Render batches of cameras exactly as splatfacto's eval does, on CUDA with gsplat or on the CPU.

On CUDA, one ``gsplat.rasterization`` call renders a whole batch of cameras. Spherical harmonics
are evaluated here, one camera at a time, and passed as per-camera colours: gsplat's own SH path
would first expand the coefficients to [C,N,16,3] floats (~200 bytes per camera and gaussian),
while per-camera colours cost 12. The maths is gsplat's, so the pixels are splatfacto's.

Without CUDA, ``reference.py`` renders the same maths in plain PyTorch, slowly. The choice of
backend is made here, once, from the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from splat_render.errors import PreviewInputError
from splat_render.gaussians import Gaussians

NEAR_PLANE = 0.01
FAR_PLANE = 1e10
# Bytes of GPU memory per (camera, gaussian) in a batched call (projection outputs, per-camera
# colours, tile intersections) and per (camera, pixel) (colour, alpha, compositing buffers);
# measured on the H100 with a margin. Used only to size batches; OOM halves them anyway.
BYTES_PER_CAMERA_GAUSSIAN = 96
BYTES_PER_CAMERA_PIXEL = 64
MAX_BATCH = 32
# Frames are produced faster than x264 encodes them even a few cameras at a time, so larger batches
# buy nothing; this keeps the renderer's memory beside the model small.
RENDER_MEMORY_BUDGET = 3 * 2**30


@dataclass(frozen=True)
class RenderSettings:
    """How splatfacto renders a model: background colour [3] and gsplat's rasterize mode."""

    background: torch.Tensor
    rasterize_mode: str = "classic"


def resolve_device(requested: str | torch.device | None) -> torch.device:
    """The device to render on: CUDA when available for None/"auto", else what was asked for."""
    if requested is None or requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PreviewInputError(f"--device {requested} was asked for, but no CUDA device is available")
    return device


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


def render_batch(
    gaussians: Gaussians,
    viewmats: torch.Tensor,  # [C,4,4] world-to-camera, OpenCV
    Ks: torch.Tensor,  # [C,3,3]
    width: int,
    height: int,
    settings: RenderSettings,
) -> torch.Tensor:
    """Composited RGB in [0,1], [C,H,W,3], on the gaussians' device."""
    if gaussians.device.type == "cuda":
        color, alpha = _render_gsplat(gaussians, viewmats, Ks, width, height, settings.rasterize_mode)
    else:
        from splat_render.reference import render_reference

        color, alpha = render_reference(gaussians, viewmats, Ks, width, height, settings.rasterize_mode)
    return torch.clamp(color + (1.0 - alpha) * settings.background.to(color), 0.0, 1.0)


def sh_colors(gaussians: Gaussians, camera_centers: torch.Tensor, evaluate) -> torch.Tensor:
    """Per-camera RGB [C,N,3] from SH, with gsplat's view directions and its +0.5, clamp_min(0)."""
    coeffs = gaussians.sh_coeffs()
    colors = [evaluate(gaussians.sh_degree, gaussians.means - center, coeffs) for center in camera_centers]
    return torch.clamp_min(torch.stack(colors) + 0.5, 0.0)


def camera_centers(viewmats: torch.Tensor) -> torch.Tensor:
    """World positions [C,3] of the cameras of world-to-camera matrices."""
    rotation = viewmats[:, :3, :3]
    return -torch.bmm(rotation.transpose(1, 2), viewmats[:, :3, 3:4])[..., 0]


def _render_gsplat(gaussians, viewmats, Ks, width, height, rasterize_mode):
    from gsplat import rasterization, spherical_harmonics

    with torch.no_grad():
        colors = sh_colors(gaussians, camera_centers(viewmats), spherical_harmonics)
        color, alpha, _ = rasterization(
            means=gaussians.means,
            quats=gaussians.quats,
            scales=gaussians.scales(),
            opacities=gaussians.opacities(),
            colors=colors,
            viewmats=viewmats,
            Ks=Ks,
            width=width,
            height=height,
            packed=False,
            near_plane=NEAR_PLANE,
            far_plane=FAR_PLANE,
            render_mode="RGB",
            sh_degree=None,
            rasterize_mode=rasterize_mode,
        )
    return color, alpha


def initial_batch_size(gaussians: Gaussians, width: int, height: int, requested: int | None) -> int:
    """Cameras per call: as asked, else what fits the memory budget (and half the free GPU memory)."""
    if requested is not None:
        return max(1, requested)
    if gaussians.device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(gaussians.device)
    per_camera = BYTES_PER_CAMERA_GAUSSIAN * len(gaussians) + BYTES_PER_CAMERA_PIXEL * width * height
    return int(np.clip(min(free // 2, RENDER_MEMORY_BUDGET) // per_camera, 1, MAX_BATCH))


def render_frames(
    gaussians: Gaussians,
    c2w: torch.Tensor,  # [N,3,4] OpenGL camera-to-world, on the gaussians' device
    K: torch.Tensor,  # [3,3] shared intrinsics
    width: int,
    height: int,
    settings: RenderSettings,
    batch_size: int | None = None,
) -> Iterator[torch.Tensor]:
    """Yield [B,H,W,3] RGB batches in path order; halve the batch on CUDA out-of-memory."""
    viewmats = viewmats_from_c2w(c2w.to(torch.float32))
    batch = initial_batch_size(gaussians, width, height, batch_size)
    start = 0
    while start < len(viewmats):
        stop = min(start + batch, len(viewmats))
        try:
            frames = render_batch(
                gaussians, viewmats[start:stop], K.expand(stop - start, 3, 3), width, height, settings
            )
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            batch //= 2
            torch.cuda.empty_cache()
            continue
        yield frames
        start = stop
