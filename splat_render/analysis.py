"""What the capture actually observed, and what kind of capture it was, from the training cameras.

A trained splat carries gaussians no camera ever saw (residue of random initialisation, the outside of
a room's walls, sky behind them). A gaussian counts as observed when it shows in the training views:
its blending weight (alpha times transmittance, occlusion included) summed over low-resolution renders
of every training view, the significance score pruning methods use. Of what was observed, the
foreground is what the cameras saw near: a gaussian whose typical viewing distance (the geometric
mean over the views, weighted by what each saw of it) exceeds FAR_FACTOR times the capture's near
distance (the median over the views of each view's 30th-percentile distance) is background: sky, a
far street through a window, the dome around a room seen through its open side.

The observed foreground is the content a preview frames. What no view saw is not drawn, except inside
the content's box: there it is what furniture hid from every camera (the floor under a table), and
leaving it out would show holes. Its box comes from ``framing``; the capture is **inside-out** (a
room walked from inside: content surrounds the cameras at their own height) or **outside-in**
(cameras around an object, looking in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from splat_render.framing import MIN_OPACITY, SceneFrame, frame_scene, inside_box
from splat_render.gaussians import Gaussians
from splat_render.raster import blending_weights
from splat_render.support import Views
from splat_render.views import NEAR_PLANE, camera_centers, gsplat_cameras

if TYPE_CHECKING:
    from nerfstudio.cameras.cameras import Cameras

CaptureType = Literal["outside-in", "inside-out", "unknown"]

ANALYSIS_SIZE = 160
"""Longest side, in pixels, of the training views rendered to measure what they saw."""

MAX_VIEWS = 150
"""Longer captures are observed through an even stride of their views (consecutive frames of a walk
see nearly the same), their weights scaled by the stride: 300 views of 3 M gaussians in under a second."""

MIN_WEIGHT = 1.0
"""A gaussian that adds up to less than one analysis pixel over all training views was not observed."""

NEAR_QUANTILE, FAR_FACTOR = 0.3, 3.0
"""A view's near depth is the weighted 30th percentile of the distances it saw; the capture's is the
median of its views'; three times that is far."""

SHOWN_BOX_MARGIN = 0.05
"""Unobserved gaussians within the content's box grown by this share are still drawn."""

DEPTH_STEP = math.log(1.05)  # 5 % depth bins for the per-view quantiles
DEPTH_RANGE = (1e-3, 1e6)

VIEW_BUDGET = 12 * 2**30
"""GPU memory for one call of the observation pass (at most a third of what is free), at about 160
bytes per (view, gaussian): large batches, since per-call costs dominate at millions of gaussians."""

SURROUND_BAND = 0.25
"""Content within this fraction of the box height of a camera's own height is 'around' that camera."""

SURROUND_BINS = 16
INSIDE_OUT_SURROUND = 0.75
"""Inside-out when, for the median camera, content lies in at least 3/4 of the directions around it."""

MAX_SURROUND_CAMERAS, SURROUND_POINTS = 64, 20_000

DENSITY_GRID, DENSITY_SHARE = 48, 0.1
"""Without cameras: voxels of 1/48 of the cloud's extent, kept above a tenth of the dense voxels' count."""


@dataclass(frozen=True)
class Observation:
    """Per gaussian [N]: blending weight summed over the training views, and the depth it was seen at
    (geometric mean, weighted); the capture's near depth."""

    weight: np.ndarray
    depth: np.ndarray
    near_depth: float


@dataclass(frozen=True)
class SceneAnalysis:
    observed: np.ndarray  # bool [N]: what the training views saw (all, without cameras)
    shown: np.ndarray  # bool [N]: what the preview draws: the observed, and all inside the content's box
    content: np.ndarray  # bool [N]: the observed foreground, what a preview frames
    frame: SceneFrame  # the content's robust, up-aligned box
    capture: CaptureType
    views: Views | None  # the training cameras, in capture order
    surround: float  # share of directions around the median camera that hold content
    reason: str  # why the capture was classified so, for the summary line

    @property
    def camera_c2w(self) -> np.ndarray | None:
        """[M,3,4] the training cameras, OpenGL camera-to-world."""
        return None if self.views is None else self.views.c2w


def observe(gaussians: Gaussians, cameras: Cameras) -> Observation:
    """Render the training views at low resolution and sum what each gaussian contributed to them."""
    device = gaussians.device
    stride = math.ceil(len(cameras) / MAX_VIEWS)
    cameras = cameras[::stride].to(device)
    widths = cameras.width.reshape(-1).to(device, torch.float32)
    heights = cameras.height.reshape(-1).to(device, torch.float32)
    scale = min(1.0, ANALYSIS_SIZE / float(max(widths[0], heights[0])))
    width, height = max(1, round(float(widths[0]) * scale)), max(1, round(float(heights[0]) * scale))
    viewmats, Ks = gsplat_cameras(cameras)
    Ks[:, 0] *= (width / widths)[:, None]  # every view to the same small size, whatever its own
    Ks[:, 1] *= (height / heights)[:, None]
    means = gaussians.means
    weight = torch.zeros(len(gaussians), device=device)
    log_depth = torch.zeros(len(gaussians), device=device)
    near_depths = []
    per_call = views_per_call(len(gaussians), device)
    for start in range(0, len(viewmats), per_call):
        views = slice(start, start + per_call)
        seen = blending_weights(gaussians, viewmats[views], Ks[views], width, height)  # [C,N]
        # Distance, not depth along the axis: a large splat can show in a view while its centre
        # lies far off to the side, at a small depth.
        depth = torch.cdist(camera_centers(viewmats[views]), means)  # [C,N]
        near_depths.append(weighted_depth_quantile(depth, seen, NEAR_QUANTILE))
        weight += seen.sum(0)
        log_depth += (seen * torch.log(depth.clamp_min(NEAR_PLANE))).sum(0)
    mean_depth = torch.exp(log_depth / weight.clamp_min(1e-12))
    near_depth = torch.cat(near_depths).median().item()
    return Observation((stride * weight).cpu().numpy(), mean_depth.cpu().numpy(), near_depth)


def views_per_call(gaussians: int, device: torch.device) -> int:
    if device.type != "cuda":
        return 8
    free, _ = torch.cuda.mem_get_info(device)
    return int(np.clip(min(VIEW_BUDGET, free // 3) // (160 * max(gaussians, 1)), 1, 64))


def weighted_depth_quantile(depth: torch.Tensor, weight: torch.Tensor, q: float) -> torch.Tensor:
    """Per row of [C,N] depths, the weighted q-quantile of the positive depths, to 5 %; [C].

    A histogram over log depth (one bincount for all rows) instead of a sort per view.
    """
    low, high = (math.log(x) / DEPTH_STEP for x in DEPTH_RANGE)
    bins = math.ceil(high - low) + 1
    valid = (depth > NEAR_PLANE) & (weight > 0)
    index = ((torch.log(depth.clamp_min(DEPTH_RANGE[0])) / DEPTH_STEP) - low).long().clamp(0, bins - 1)
    rows = torch.arange(len(depth), device=depth.device)[:, None].expand_as(index)
    histogram = torch.bincount(
        (rows * bins + index)[valid], weights=weight[valid], minlength=len(depth) * bins
    ).reshape(len(depth), bins)
    cumulative = histogram.cumsum(1)
    target = q * cumulative[:, -1:]
    found = torch.searchsorted(cumulative, target).clamp(max=bins - 1)[:, 0]
    quantile = torch.exp((found.to(depth.dtype) + low + 1) * DEPTH_STEP)
    return torch.where(cumulative[:, -1] > 0, quantile, torch.full_like(quantile, DEPTH_RANGE[1]))


def analyze_scene(
    gaussians: Gaussians,
    cameras: Cameras | None,
    up: np.ndarray | None = None,  # a known up direction (PLY header, --up); None: estimate it
    observation: Observation | None = None,  # None: observe now (when there are cameras)
) -> SceneAnalysis:
    """Observed gaussians, the content's box and the capture type, from the model and its cameras."""
    means = gaussians.means.cpu().numpy()
    opacities = gaussians.opacities().cpu().numpy()
    if cameras is None:
        content = dense_points(means, opacities)
        frame = frame_scene(means[content], opacities[content], None, up=up)
        shown = content | inside_box(frame, means, SHOWN_BOX_MARGIN)
        return SceneAnalysis(
            np.ones(len(means), dtype=bool),
            shown,
            content,
            frame,
            "unknown",
            None,
            0.0,
            f"no training cameras: framed from the {content.mean():.0%} of gaussians on dense surfaces",
        )
    if observation is None:
        observation = observe(gaussians, cameras)
    observed = observation.weight >= MIN_WEIGHT
    content = observed & (observation.depth <= FAR_FACTOR * observation.near_depth)
    if not content.any():  # nothing seen near: fall back to everything seen, then to all
        content = observed if observed.any() else np.ones(len(means), dtype=bool)
    views = training_views(cameras)
    c2w = views.c2w
    frame = frame_scene(means[content], opacities[content], c2w, up=up)
    surround = surrounding_share(means[content], frame, c2w[:, :, 3])
    capture: CaptureType = "inside-out" if surround >= INSIDE_OUT_SURROUND else "outside-in"
    reason = (
        f"content surrounds the cameras in {surround:.0%} of directions"
        if capture == "inside-out"
        else f"cameras outside the content (it fills {surround:.0%} of the directions around them)"
    )
    shown = observed | inside_box(frame, means, SHOWN_BOX_MARGIN)
    return SceneAnalysis(observed, shown, content, frame, capture, views, surround, reason)


def training_views(cameras: Cameras) -> Views:
    """The training cameras as poses and fields of view (principal points taken as centred)."""
    c2w = cameras.camera_to_worlds.reshape(-1, 3, 4).cpu().numpy().astype(np.float64)
    half = [
        (size.reshape(-1).cpu().numpy().astype(np.float64) / 2) / focal.reshape(-1).cpu().numpy()
        for size, focal in ((cameras.width, cameras.fx), (cameras.height, cameras.fy))
    ]
    return Views(c2w, np.stack(half, axis=1))


def dense_points(means: np.ndarray, opacities: np.ndarray) -> np.ndarray:
    """Boolean [N]: gaussians in voxels of surface-like density, without cameras the best guess at content.

    Surfaces pack gaussians densely; residue that no camera constrained is spread thin through a
    volume. Voxels are kept that hold at least DENSITY_SHARE of the count of the voxels that hold
    the densest 30 % of the gaussians: every surface of a scan, none of a thin cloud around it.
    """
    usable = np.isfinite(means).all(axis=1) & (opacities >= MIN_OPACITY)
    points = means[usable]
    if len(points) < 100:
        return usable
    low, high = np.percentile(points, [1, 99], axis=0)
    size = max((high - low).max() / DENSITY_GRID, 1e-9)
    cells = np.floor((points - low) / size).astype(np.int64)
    inside = np.all((cells >= 0) & (cells < DENSITY_GRID), axis=1)
    keys = (cells[:, 0] * DENSITY_GRID + cells[:, 1]) * DENSITY_GRID + cells[:, 2]
    _, voxel, counts = np.unique(np.where(inside, keys, -1), return_inverse=True, return_counts=True)
    per_point = counts[voxel].astype(np.float64)
    dense_count = np.quantile(per_point[inside], 0.7)  # the voxel count at the densest 30 % of points
    dense = np.zeros(len(means), dtype=bool)
    dense[np.flatnonzero(usable)] = inside & (per_point >= DENSITY_SHARE * dense_count)
    return dense if dense.sum() >= 100 else usable


def surrounding_share(points: np.ndarray, frame: SceneFrame, positions: np.ndarray) -> float:
    """For the median camera, the share of horizontal directions with content at about its own height."""
    points = points[:: max(1, len(points) // SURROUND_POINTS)]
    positions = positions[:: max(1, len(positions) // MAX_SURROUND_CAMERAS)]
    band = SURROUND_BAND * 2 * frame.half_extent[2]
    heights = points @ frame.up
    shares = []
    for position in positions:
        near = points[np.abs(heights - position @ frame.up) <= band] - position
        if len(near) == 0:
            shares.append(0.0)
            continue
        azimuth = np.arctan2(near @ frame.axes[1], near @ frame.axes[0])
        counts = np.bincount(
            ((azimuth + math.pi) / (2 * math.pi) * SURROUND_BINS).astype(int) % SURROUND_BINS,
            minlength=SURROUND_BINS,
        )
        shares.append(float(np.mean(counts >= max(2, 0.002 * len(near)))))
    return float(np.median(shares))
