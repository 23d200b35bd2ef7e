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
from typing import TYPE_CHECKING

import numpy as np
import torch

from splat_render.errors import PreviewInputError
from splat_render.gaussians import Gaussians
from splat_render.views import FAR_PLANE, NEAR_PLANE, camera_centers, gsplat_cameras, image_size, sh_colors

if TYPE_CHECKING:  # nerfstudio is imported only where a camera batch is built
    from nerfstudio.cameras.cameras import Cameras

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
    """The device to render on: CUDA when available for None/"auto", else what was asked for; a
    one-line error for a device the renderer has no backend for, or that this machine lacks."""
    if requested is None or requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
        if device.type not in ("cuda", "cpu"):  # torch knows more devices than there are renderers
            raise ValueError(device.type)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise PreviewInputError(f"--device must be auto, cuda, cuda:N or cpu, got {requested!s}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PreviewInputError(f"--device {requested} was asked for, but no CUDA device is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise PreviewInputError(f"--device {requested} was asked for, but this machine has {count} CUDA GPUs")
    return device


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


def _render_gsplat(gaussians, viewmats, Ks, width, height, rasterize_mode):
    from gsplat import spherical_harmonics

    with torch.no_grad():
        colors = sh_colors(gaussians, camera_centers(viewmats), spherical_harmonics)
        color, alpha, _ = _rasterize(gaussians, colors, viewmats, Ks, width, height, rasterize_mode)
    return color, alpha


def _rasterize(gaussians, colors, viewmats, Ks, width, height, rasterize_mode):
    """gsplat's rasterization as splatfacto calls it, with colours already per camera ([C,N,D])."""
    from gsplat import rasterization

    return rasterization(
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


def blending_weights(
    gaussians: Gaussians,
    viewmats: torch.Tensor,  # [C,4,4] world-to-camera, OpenCV
    Ks: torch.Tensor,  # [C,3,3]
    width: int,
    height: int,
    rasterize_mode: str = "classic",
) -> torch.Tensor:
    """How much each gaussian shows in each view: its alpha·transmittance summed over the pixels, [C,N].

    On CUDA this is the gradient of the rendered image's sum with respect to per-camera colours of
    ones (∂C/∂cᵢ = αᵢTᵢ per pixel), which gsplat's backward pass computes exactly, occlusion included.
    """
    if gaussians.device.type != "cuda":
        from splat_render.reference import blending_weights as reference_weights

        return reference_weights(gaussians, viewmats, Ks, width, height, rasterize_mode)
    ones = torch.ones(len(viewmats), len(gaussians), 1, device=gaussians.device, requires_grad=True)
    with torch.enable_grad():
        image, _, _ = _rasterize(gaussians, ones, viewmats, Ks, width, height, rasterize_mode)
        (weights,) = torch.autograd.grad(image.sum(), ones)
    return weights[..., 0]


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
    cameras: Cameras,  # [N], one image size, on the gaussians' device
    settings: RenderSettings,
    batch_size: int | None = None,
    cuts: torch.Tensor | None = None,  # [N,K,P,4] per frame, cuts of planes (see orbit.CameraPath)
) -> Iterator[torch.Tensor]:
    """Yield [B,H,W,3] RGB batches in path order; halve the batch on CUDA out-of-memory.

    A frame whose cuts hide some gaussians renders alone, with only the gaussians they keep: gsplat
    takes one opacity per gaussian for all cameras of a call, and gathering a frame's subset costs
    far less than rendering it. Frames whose cuts hide nothing render in batches.
    """
    width, height = image_size(cameras)
    viewmats, Ks = gsplat_cameras(cameras)
    hides = torch.zeros(len(viewmats), dtype=torch.bool)
    if cuts is not None:
        hides = torch.stack([~kept_by_cuts(gaussians.means, planes).all() for planes in cuts]).cpu()
    batch = initial_batch_size(gaussians, width, height, batch_size)
    start = 0
    while start < len(viewmats):
        if hides[start]:
            kept = gaussians.select(kept_by_cuts(gaussians.means, cuts[start]))
            one = slice(start, start + 1)
            yield render_batch(kept, viewmats[one], Ks[one], width, height, settings)
            start += 1
            continue
        stop = min(start + batch, len(viewmats))
        stop = start + int(torch.cumprod(~hides[start:stop], 0).sum())  # up to the next frame with cuts
        try:
            frames = render_batch(gaussians, viewmats[start:stop], Ks[start:stop], width, height, settings)
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            batch //= 2
            torch.cuda.empty_cache()
            continue
        yield frames
        start = stop


def kept_by_cuts(means: torch.Tensor, cuts: torch.Tensor) -> torch.Tensor:
    """Boolean [N]: the points that no cut [K,P,4] hides (a cut hides what lies beyond all its planes)."""
    cuts = cuts.to(means)
    beyond = torch.einsum("nj,kpj->nkp", means, cuts[..., :3]) > cuts[..., 3]
    return ~beyond.all(dim=2).any(dim=1)
