"""Splatfacto's render in plain PyTorch, for machines without CUDA (CI, the CPU demo).

Projection and spherical harmonics reuse gsplat's own PyTorch reference functions (private, but
present with these signatures in gsplat 1.4 and 1.5), so the EWA maths (0.3 px blur, frustum
clamping, antialiasing compensation) is gsplat's. gsplat has no CPU compositor, so that part is
written here: gaussians sorted by depth per 8×8 tile (gsplat uses 16×16; smaller tiles waste far
fewer evaluations on the CPU and only drop contributions below gsplat's own 1/255 cut-off), then
front-to-back alpha compositing with gsplat's cut-offs (alpha ≥ 1/255, alpha ≤ 0.999, stop once
transmittance would drop to 1e-4).
"""

from __future__ import annotations

import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)

from splat_render.gaussians import Gaussians
from splat_render.views import FAR_PLANE, NEAR_PLANE, camera_centers, sh_colors

TILE = 8
MIN_ALPHA = 1.0 / 255.0
MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
MAX_PAIRS_PER_CHUNK = 16384  # (tile, gaussian) pairs composited at once, × 64 pixels each


def render_reference(
    gaussians: Gaussians,
    viewmats: torch.Tensor,  # [C,4,4]
    Ks: torch.Tensor,  # [C,3,3]
    width: int,
    height: int,
    rasterize_mode: str = "classic",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour [C,H,W,3] (not yet composited over a background) and alpha [C,H,W,1]."""
    with torch.no_grad():
        g, views = _project(gaussians, viewmats, Ks, width, height, rasterize_mode)
        colors = sh_colors(g, camera_centers(viewmats.cpu().float()), _spherical_harmonics)
        images = [_composite(*view, colors[c], width, height) for c, view in enumerate(views)]
    color = torch.stack([i[0] for i in images])
    alpha = torch.stack([i[1] for i in images])
    return color, alpha


def blending_weights(
    gaussians: Gaussians,
    viewmats: torch.Tensor,  # [C,4,4]
    Ks: torch.Tensor,  # [C,3,3]
    width: int,
    height: int,
    rasterize_mode: str = "classic",
) -> torch.Tensor:
    """Each gaussian's blending weight (alpha times transmittance) summed over each view's pixels, [C,N]."""
    with torch.no_grad():
        g, views = _project(gaussians, viewmats, Ks, width, height, rasterize_mode)
        ones = torch.ones(len(g), 3)
        return torch.stack([_composite(*view, ones, width, height)[2] for view in views])


def _project(gaussians, viewmats, Ks, width, height, rasterize_mode):
    """The gaussians on the CPU and, per camera, (means2d, conics, opacities, depths, radii) from gsplat."""
    g = gaussians.to("cpu")
    viewmats, Ks = viewmats.cpu().float(), Ks.cpu().float()
    covars, _ = _quat_scale_to_covar_preci(
        torch.nn.functional.normalize(g.quats, dim=-1), g.scales(), compute_preci=False
    )
    radii, means2d, depths, conics, compensations = _fully_fused_projection(
        g.means,
        covars,
        viewmats,
        Ks,
        width,
        height,
        0.3,
        NEAR_PLANE,
        FAR_PLANE,
        calc_compensations=rasterize_mode == "antialiased",
    )
    opacities = g.opacities().expand(len(viewmats), -1)
    if compensations is not None:
        opacities = opacities * compensations
    radii = radii.reshape(*radii.shape[:2], -1).expand(-1, -1, 2)  # gsplat 1.4: [C,N]; 1.5: [C,N,2]
    return g, list(zip(means2d, conics, opacities, depths, radii, strict=True))


def _composite(means2d, conics, opacities, depths, radii, colors, width, height):
    """Front-to-back compositing of one camera's projected gaussians, tile by tile.

    Returns the colour [H,W,3], the alpha [H,W,1] and each gaussian's summed blending weight [N].
    """
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    visible = (radii > 0).all(-1).nonzero()[:, 0]
    order = visible[torch.argsort(depths[visible], stable=True)]
    lo = ((means2d[order] - radii[order]) / TILE).floor().clamp_min(0).long()
    hi = ((means2d[order] + radii[order]) / TILE).ceil().long()
    hi[:, 0].clamp_(max=tiles_x)
    hi[:, 1].clamp_(max=tiles_y)
    pair_gauss, pair_tile = _tile_pairs(order, lo, hi, tiles_x)
    # Sort pairs by tile, keeping depth order inside each tile (pairs were generated in depth order).
    by_tile = torch.argsort(pair_tile, stable=True)
    pair_gauss, pair_tile = pair_gauss[by_tile], pair_tile[by_tile]

    color = torch.zeros(tiles_y * tiles_x, TILE * TILE, 3)
    gaussian_weight = torch.zeros(len(means2d))
    transmittance = torch.ones(tiles_y * tiles_x, TILE * TILE)
    offsets = torch.arange(TILE)
    local_y, local_x = torch.meshgrid(offsets, offsets, indexing="ij")
    local = torch.stack([local_x.reshape(-1), local_y.reshape(-1)], -1).float() + 0.5  # pixel centres

    boundaries = _chunk_boundaries(pair_tile, MAX_PAIRS_PER_CHUNK)
    for start, stop in zip(boundaries[:-1], boundaries[1:], strict=True):
        gid, tid = pair_gauss[start:stop], pair_tile[start:stop]
        origin = torch.stack([tid % tiles_x, tid // tiles_x], -1).float() * TILE
        delta = means2d[gid][:, None, :] - (origin[:, None, :] + local[None])  # [P,256,2]
        a, b, c = conics[gid].unbind(-1)
        sigma = 0.5 * (a[:, None] * delta[..., 0] ** 2 + c[:, None] * delta[..., 1] ** 2) + (
            b[:, None] * delta[..., 0] * delta[..., 1]
        )
        alpha = torch.clamp_max(opacities[gid][:, None] * torch.exp(-sigma.clamp_max(20.0)), MAX_ALPHA)
        alpha = torch.where((sigma >= 0) & (alpha >= MIN_ALPHA), alpha, 0.0)
        # Transmittance before each pair, within its tile: segmented exclusive product, in logs.
        log_keep = torch.log1p(-alpha.double())
        inclusive = torch.cumsum(log_keep, 0)
        first = torch.ones_like(tid, dtype=torch.bool)
        first[1:] = tid[1:] != tid[:-1]
        segment_start = torch.cummax(torch.where(first, torch.arange(len(tid)), 0), 0).values
        before_segment = (inclusive - log_keep)[segment_start]
        t_before = transmittance[tid] * torch.exp((inclusive - log_keep) - before_segment).float()
        t_after = t_before * (1.0 - alpha)
        weight = torch.where(t_after > MIN_TRANSMITTANCE, alpha * t_before, 0.0)
        # gsplat stops a pixel at the first gaussian that would bring it to 1e-4: later ones are out.
        stopped = torch.cumsum((t_after <= MIN_TRANSMITTANCE).int(), 0)
        stopped = stopped - (stopped - (t_after <= MIN_TRANSMITTANCE).int())[segment_start]
        weight = torch.where(stopped > 0, 0.0, weight)
        color.index_add_(0, tid, weight[..., None] * colors[gid][:, None, :])
        gaussian_weight.index_add_(0, gid, weight.sum(1))
        last_alive = torch.where(stopped > 0, 1.0, 1.0 - alpha)
        log_alive = torch.log(last_alive.double()).float()
        transmittance *= torch.exp(torch.zeros_like(transmittance).index_add_(0, tid, log_alive))
    image = _untile(color, tiles_x, tiles_y)[:height, :width]
    alpha_image = 1.0 - _untile(transmittance[..., None], tiles_x, tiles_y)[:height, :width]
    return image, alpha_image, gaussian_weight


def _tile_pairs(order, lo, hi, tiles_x):
    """(gaussian, tile) pairs for every tile each gaussian's 3-sigma box touches, in depth order."""
    span = (hi - lo).clamp_min(0)
    counts = span[:, 0] * span[:, 1]
    gauss = torch.repeat_interleave(order, counts)
    index = torch.arange(int(counts.sum())) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    width = torch.repeat_interleave(span[:, 0], counts).clamp_min(1)
    tx = torch.repeat_interleave(lo[:, 0], counts) + index % width
    ty = torch.repeat_interleave(lo[:, 1], counts) + index // width
    return gauss, ty * tiles_x + tx


def _chunk_boundaries(pair_tile: torch.Tensor, limit: int) -> list[int]:
    """Split points at tile boundaries; no chunk exceeds ``limit`` pairs unless one tile does."""
    starts = torch.cat([torch.tensor([0]), (pair_tile[1:] != pair_tile[:-1]).nonzero()[:, 0] + 1])
    bounds = [0]
    for s in starts.tolist()[1:]:
        if s - bounds[-1] > limit:
            bounds.append(s)
    bounds.append(len(pair_tile))
    return sorted(set(bounds))


def _untile(values: torch.Tensor, tiles_x: int, tiles_y: int) -> torch.Tensor:
    channels = values.shape[-1]
    grid = values.reshape(tiles_y, tiles_x, TILE, TILE, channels).permute(0, 2, 1, 3, 4)
    return grid.reshape(tiles_y * TILE, tiles_x * TILE, channels)
