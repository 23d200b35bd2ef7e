"""View support: how much of what a camera shows the training views vouch for.

A trained splat is reliable near the views that trained it and degrades with the angle from them:
floaters, wall backs and smeared colour are what a camera sees where no training view looked. A
content point shown by a camera is **supported** when some training view saw it from a similar
direction (within SUPPORT_ANGLE_DEG at the point) and a similar distance (within a factor of
SUPPORT_DISTANCE_RATIO, closer or farther); a frame is supported when at least SUPPORTED_SHARE of
the content it shows is. What a camera shows is decided on a sample of the content's points with a
coarse depth buffer: a point hidden behind nearer content in its cell is not shown. The same test
decides what each training view saw, so both sides of the comparison see alike.

Everything is tensors on the gaussians' device: hundreds of candidate frames score in well under
a second on a GPU, and in about a second on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

SUPPORT_ANGLE_DEG = 25.0
SUPPORT_DISTANCE_RATIO = 2.0
SUPPORTED_SHARE = 0.7
"""A frame is supported when at least this share of the content it shows is."""

MAX_VIEWS = 120
"""Longer captures are compared through an even stride of their views (neighbours see alike)."""

GRID = 32
"""Cells across each side of a view's depth buffer: coarse enough that a few thousand points
cover a wall without gaps, fine enough that an object hides only what stands behind it."""

DEPTH_TOLERANCE = 0.15
"""A point within this share of its cell's nearest depth (3×3 cells around it) is shown, not hidden."""

NEAR_SHARE = 0.02
"""Points nearer to a camera than this share of the capture's typical viewing distance are not
counted: a camera may pass close to a surface without that surface deciding the frame."""

FRAMES_PER_CALL = 16


@dataclass(frozen=True)
class Views:
    """Pinhole cameras: OpenGL camera-to-world [F,3,4] and tan of half the field of view [F,2] (x, y)."""

    c2w: np.ndarray
    tan_half: np.ndarray

    def __post_init__(self) -> None:
        if self.tan_half.shape != (len(self.c2w), 2):
            raise ValueError(f"tan_half {self.tan_half.shape} must be [{len(self.c2w)},2]")

    def __len__(self) -> int:
        return len(self.c2w)

    @classmethod
    def of_path(cls, c2w: np.ndarray, fov_y_deg: float, width: int, height: int) -> Views:
        tan_y = math.tan(math.radians(fov_y_deg) / 2)
        tan = np.tile([tan_y * width / height, tan_y], (len(c2w), 1))
        return cls(np.asarray(c2w, dtype=np.float64), tan)


@dataclass(frozen=True)
class ViewSupport:
    """What the training views saw of a sample of the content: per view [M,S], on one device."""

    points: torch.Tensor  # [S,3]
    seen: torch.Tensor  # [M,S] bool
    directions: torch.Tensor  # [M,S,3] unit, from the point towards the view
    distances: torch.Tensor  # [M,S]
    scale: float  # the capture's typical viewing distance (median over what the views saw)

    @property
    def observed(self) -> torch.Tensor:
        """[S] bool: the points some training view saw."""
        return self.seen.any(dim=0)


@dataclass(frozen=True)
class FrameSupport:
    """Per frame [F,S]: the content points the frame shows, and those of them a training view supports."""

    shown: torch.Tensor
    supported: torch.Tensor

    def shares(self) -> np.ndarray:
        """[F] the share of what each frame shows that is supported (0 for a frame showing nothing)."""
        shown = self.shown.sum(dim=1)
        return (self.supported.sum(dim=1) / shown.clamp_min(1)).cpu().numpy()

    def supported_frames(self) -> float:
        """Share of the frames that are supported."""
        return float(np.mean(self.shares() >= SUPPORTED_SHARE))

    def coverage(self, support: ViewSupport) -> float:
        """Share of what the capture saw that some frame shows from a supported direction."""
        observed = support.observed
        reached = self.supported.any(dim=0) & observed
        return float(reached.sum() / observed.sum().clamp_min(1))


def view_support(points: np.ndarray, views: Views, device: torch.device) -> ViewSupport:
    """What each training view (an even stride of at most MAX_VIEWS) saw of the content points [S,3]."""
    stride = math.ceil(len(views) / MAX_VIEWS)
    views = Views(views.c2w[::stride], views.tan_half[::stride])
    points_t = torch.as_tensor(points, dtype=torch.float32, device=device)
    seen, directions, distances = shown_points(points_t, views, near=0.0)
    typical = distances[seen].median().item() if seen.any() else 1.0
    return ViewSupport(points_t, seen, directions, distances, typical)


def frame_support(support: ViewSupport, views: Views) -> FrameSupport:
    """Which content points each frame shows, and which of those a training view saw alike."""
    shown, directions, distances = shown_points(support.points, views, NEAR_SHARE * support.scale)
    cos_limit = math.cos(math.radians(SUPPORT_ANGLE_DEG))
    log_ratio = math.log(SUPPORT_DISTANCE_RATIO)
    log_seen = torch.log(support.distances.clamp_min(1e-9))
    supported = []
    for start in range(0, len(views), FRAMES_PER_CALL):
        part = slice(start, start + FRAMES_PER_CALL)
        cos = torch.einsum("fsc,msc->fms", directions[part], support.directions)  # [f,M,S]
        near = (torch.log(distances[part].clamp_min(1e-9))[:, None] - log_seen[None]).abs() <= log_ratio
        alike = support.seen[None] & (cos >= cos_limit) & near
        supported.append(alike.any(dim=1) & shown[part])
    return FrameSupport(shown, torch.cat(supported))


def shown_points(
    points: torch.Tensor, views: Views, near: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per view [F,S]: whether each point shows (in the frustum, not behind nearer points of its cell),
    the unit direction from the point to the camera [F,S,3], and the distance [F,S]."""
    device = points.device
    c2w = torch.as_tensor(views.c2w, dtype=torch.float32, device=device)
    tan = torch.as_tensor(views.tan_half, dtype=torch.float32, device=device)
    offsets = c2w[:, None, :, 3] - points[None]  # [F,S,3] point → camera
    distances = offsets.norm(dim=2).clamp_min(1e-9)
    local = torch.einsum("fji,fsj->fsi", c2w[:, :, :3], -offsets)  # camera axes, OpenGL (looks down −z)
    depth = -local[..., 2]
    u = local[..., 0] / (depth * tan[:, None, 0])
    v = local[..., 1] / (depth * tan[:, None, 1])
    inside = (depth > max(near, 1e-6)) & (u.abs() <= 1) & (v.abs() <= 1)
    column = ((u + 1) / 2 * GRID).long().clamp(0, GRID - 1)
    row = ((v + 1) / 2 * GRID).long().clamp(0, GRID - 1)
    cell = torch.where(inside, row * GRID + column, GRID * GRID)  # the spare cell takes what is outside
    nearest = torch.full((len(c2w), GRID * GRID + 1), math.inf, device=device)
    nearest = nearest.scatter_reduce(1, cell, torch.where(inside, depth, math.inf), "amin")
    grid = nearest[:, :-1].reshape(-1, 1, GRID, GRID)
    grid = -torch.nn.functional.max_pool2d(-grid, 3, stride=1, padding=1)  # nearest of the 3×3 around
    nearest = torch.cat([grid.reshape(len(c2w), -1), nearest[:, -1:]], dim=1)
    shown = inside & (depth <= nearest.gather(1, cell) * (1 + DEPTH_TOLERANCE))
    return shown, offsets / distances[..., None], distances


DISTINCT_ANGLE_DEG = 15.0
"""Two views see a point from distinct directions when their rays to it are at least this far apart:
closer views see the same side nearly alike and pin neither its depth nor its view-dependent colour."""


def distinct_directions(
    support: ViewSupport, min_angle_deg: float = DISTINCT_ANGLE_DEG, enough: int = 3
) -> torch.Tensor:
    """[S] how many of the views that saw each point saw it from directions pairwise at least
    ``min_angle_deg`` apart, up to ``enough``: views taken greedily in capture order (a lower bound
    of the largest such set, exact for 0 and 1 and nearly always for more)."""
    cos_limit = math.cos(math.radians(min_angle_deg))
    points = len(support.points)
    device = support.points.device
    every = torch.arange(points, device=device)
    chosen = torch.zeros(enough, points, 3, device=device)
    count = torch.zeros(points, dtype=torch.long, device=device)
    used = torch.arange(enough, device=device)[:, None]
    for seen, direction in zip(support.seen, support.directions, strict=True):
        near = ((chosen * direction[None]).sum(dim=2) > cos_limit) & (used < count[None])
        take = seen & ~near.any(dim=0) & (count < enough)
        slot = count.clamp(max=enough - 1)
        chosen[slot, every] = torch.where(take[:, None], direction, chosen[slot, every])
        count += take
    return count
