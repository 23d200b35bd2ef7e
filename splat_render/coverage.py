"""Spatial coverage of a capture: how many distinct directions the training views saw each part of
the content from, where the thinly seen parts are, and a picture that tints them.

The content is what the preview frames (``analysis``): the drawn gaussians inside the content's box,
the never-observed ones there included (the far side of an object no camera went round to). An even
sample of them is tested against every training view with the depth-buffer test of view support
(``support.view_support``); a point is **well seen** from three directions pairwise at least
``DISTINCT_ANGLE_DEG`` apart, **thin** from fewer. The picture is the poster's frame rendered with
each content gaussian's colour blended towards a warm tint by the thinness of its nearest sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from gsplat.cuda._torch_impl import _quat_to_rotmat

from splat_render.analysis import SHOWN_BOX_MARGIN, SceneAnalysis
from splat_render.framing import MIN_OPACITY, SceneFrame, inside_box, normalized
from splat_render.gaussians import SH_C0, Gaussians
from splat_render.support import DISTINCT_ANGLE_DEG, distinct_directions, view_support

SAMPLE = 4000
"""Content points tested, as for view support: a wall seen from two metres holds a few dozen."""

WELL_SEEN = 3  # distinct directions that make a point well seen

TINT = (1.0, 0.42, 0.0)
"""Warm orange: far from every colour a room or an object is commonly scanned in, so it reads as a mark."""

TINT_WEIGHT = (0.7, 0.5, 0.3, 0.0)
"""How far a gaussian's colour moves towards the tint, by its sample's distinct directions (0, 1, 2, 3+):
at most half for content some view saw, so that a capture seen from one spot everywhere (an office
filmed from its chair) still reads through its tint."""

SECTORS = ("far", "far right", "right", "near right", "near", "near left", "left", "far left")
"""Where a thin region lies around the content's centre, as seen from the poster's camera: far is
where it looks, near the side facing it."""

MIN_REGION_SHARE = 0.02  # a region must hold this share of the content to be named
THIN_REGION_SHARE = 0.5  # and be mostly thin
MAX_REGIONS = 4

GRAZING_DEG = 75.0
"""A flat gaussian (a surface's disk) is not seen by a view that meets it at more than this from its
normal: edge-on, a camera sees the surface beside it, not the disk."""
FLAT = 0.3  # a gaussian is flat when its thinnest axis is under this share of its middle one

NEAREST_CHUNK = 65_536  # gaussians matched to their nearest sample at once ([chunk, S] distances)


@dataclass(frozen=True)
class Coverage:
    """Per content sample [S]: its position, the views that saw it, and its distinct directions."""

    points: np.ndarray  # [S,3] training frame
    views: np.ndarray  # [S] how many of the compared views saw it
    directions: np.ndarray  # [S] distinct directions, 0..WELL_SEEN
    compared_views: int
    regions: tuple[dict[str, Any], ...]

    def share(self, mask: np.ndarray) -> float:
        return round(float(mask.mean()) if len(mask) else 0.0, 4)

    def figures(self) -> dict[str, Any]:
        d = self.directions
        return {
            "distinct_angle_deg": DISTINCT_ANGLE_DEG,
            "sample_points": len(self.points),
            "views_compared": self.compared_views,
            "well_seen": self.share(d >= WELL_SEEN),
            "two_directions": self.share(d == 2),
            "one_direction": self.share(d == 1),
            "unseen": self.share(d == 0),
            "seen_once": self.share(self.views == 1),
            "thin_regions": list(self.regions),
        }


def content_sample(analysis: SceneAnalysis, gaussians: Gaussians, count: int = SAMPLE) -> np.ndarray:
    """[S] indices of an even sample of the drawn, visible gaussians inside the content's box."""
    means = gaussians.means.cpu().numpy()
    visible = np.isfinite(means).all(axis=1) & (gaussians.opacities().cpu().numpy() >= MIN_OPACITY)
    chosen = visible & analysis.shown & inside_box(analysis.frame, means, SHOWN_BOX_MARGIN)
    if not chosen.any():
        chosen = visible & analysis.content
    return np.flatnonzero(chosen)[:: max(1, int(chosen.sum()) // count)]


def flat_normals(gaussians: Gaussians) -> torch.Tensor:
    """[N,3] unit normals of the flat gaussians (their thinnest axis); zero for the others."""
    rotation = _quat_to_rotmat(gaussians.quats)  # [N,3,3], columns are the gaussian's axes (gsplat's)
    scales, order = gaussians.log_scales.sort(dim=1)
    normal = rotation.gather(2, order[:, None, :1].expand(-1, 3, 1))[..., 0]
    flat = scales[:, 0] - scales[:, 1] < math.log(FLAT)
    return torch.where(flat[:, None], normal, 0.0)


def measure_coverage(
    analysis: SceneAnalysis, gaussians: Gaussians, poster_c2w: np.ndarray
) -> Coverage | None:
    """How the training views covered the content; None without training cameras or content."""
    if analysis.views is None:
        return None
    index = content_sample(analysis, gaussians)
    if len(index) == 0:
        return None
    sample = gaussians.select(torch.as_tensor(index, device=gaussians.device))
    points = sample.means.cpu().numpy().astype(np.float64)
    support = view_support(points, analysis.views, gaussians.device)
    normals = flat_normals(sample)  # [S,3]
    facing = (support.directions * normals[None]).sum(dim=2).abs()  # [M,S]; 0 for round gaussians
    grazing = (normals.norm(dim=1) > 0)[None] & (facing < math.cos(math.radians(GRAZING_DEG)))
    support = replace(support, seen=support.seen & ~grazing)
    directions = distinct_directions(support, enough=WELL_SEEN).cpu().numpy()
    views = support.seen.sum(dim=0).cpu().numpy()
    regions = thin_regions(points, directions < WELL_SEEN, analysis.frame, poster_c2w)
    return Coverage(points, views, directions, len(support.seen), regions)


def thin_regions(
    points: np.ndarray, thin: np.ndarray, frame: SceneFrame, poster_c2w: np.ndarray
) -> tuple[dict[str, Any], ...]:
    """The parts of the content (a sector around its centre, as the poster's camera sees it, and its
    lower or upper half) that are mostly thin, the largest first."""
    up = frame.up
    ahead = -poster_c2w[:, 2]
    ahead = ahead - np.dot(ahead, up) * up
    ahead = normalized(ahead) if np.linalg.norm(ahead) > 1e-6 else frame.axes[0]
    right = np.cross(ahead, up)
    offset = points - frame.center
    azimuth = np.arctan2(offset @ right, offset @ ahead)  # 0: far, +90°: right
    sector = np.round(azimuth / (2 * math.pi / len(SECTORS))).astype(int) % len(SECTORS)
    upper = (offset @ up > 0).astype(int)
    regions = []
    for key in np.unique(sector * 2 + upper):
        members = sector * 2 + upper == key
        share, thin_share = members.mean(), thin[members].mean()
        if share < MIN_REGION_SHARE or thin_share < THIN_REGION_SHARE:
            continue
        where = f"{SECTORS[key // 2]}, {'upper' if key % 2 else 'lower'}"
        center = points[members & thin].mean(axis=0)
        regions.append(
            {
                "where": where,
                "content": round(float(share), 4),
                "thin": round(float(thin_share), 4),
                "center": [round(float(c), 3) for c in center],
            }
        )
    regions.sort(key=lambda region: -region["content"] * region["thin"])
    return tuple(regions[:MAX_REGIONS])


def tinted(gaussians: Gaussians, coverage: Coverage, frame: SceneFrame) -> Gaussians:
    """The gaussians with each one inside the content's box blended towards ``TINT`` by the thinness
    of its nearest content sample; view-dependent colour fades as much."""
    device = gaussians.device
    samples = torch.as_tensor(coverage.points, dtype=torch.float32, device=device)
    weights = torch.as_tensor(TINT_WEIGHT, device=device)[
        torch.as_tensor(coverage.directions, device=device).clamp(max=WELL_SEEN)
    ]
    nearest = torch.cat(
        [torch.cdist(part, samples).argmin(dim=1) for part in gaussians.means.split(NEAREST_CHUNK)]
    )
    inside = torch.as_tensor(
        inside_box(frame, gaussians.means.cpu().numpy(), SHOWN_BOX_MARGIN), device=device
    )
    weight = torch.where(inside, weights[nearest], 0.0)[:, None]
    tint = (torch.as_tensor(TINT, dtype=torch.float32, device=device) - 0.5) / SH_C0  # as a DC term
    return Gaussians(
        gaussians.means,
        gaussians.quats,
        gaussians.log_scales,
        gaussians.opacity_logits,
        gaussians.sh_dc * (1 - weight) + tint * weight,
        gaussians.sh_rest * (1 - weight[:, :, None]),
    )
