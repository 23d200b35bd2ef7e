"""Which camera path a preview takes, and which of its frames makes the poster.

``auto`` follows the capture: an **orbit** around what outside-in cameras looked at, a **dollhouse**
of the room an inside-out capture walked through. The choice and its reason travel with the path,
for the summary line.
"""

from __future__ import annotations

import numpy as np
import torch

from splat_render.analysis import SceneAnalysis
from splat_render.errors import PreviewInputError
from splat_render.framing import MIN_OPACITY, normalized
from splat_render.gaussians import Gaussians
from splat_render.orbit import CameraPath, PathKind, PathSpec, hidden_by_cuts, ring_path
from splat_render.walkthrough import capture_path

CONTENT_SAMPLE = 2000
"""Content points the path is fitted to: an even stride through them, plenty for 1 % quantiles."""


SPLAT_REACH = 2.0
"""A splat shows to about two standard deviations of its largest axis (alpha falls to e⁻² there)."""


def content_points(
    analysis: SceneAnalysis, gaussians: Gaussians, drawn: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """An even sample of the drawn, visible content gaussians: centres [S,3] and how far they reach [S]."""
    means = gaussians.means.cpu().numpy()
    content = analysis.content & drawn & np.isfinite(means).all(axis=1)
    chosen = content & (gaussians.opacities().cpu().numpy() >= MIN_OPACITY)
    if not chosen.any():
        chosen = content if content.any() else analysis.content
    index = np.flatnonzero(chosen)[:: max(1, int(chosen.sum()) // CONTENT_SAMPLE)]
    points = means[index].astype(np.float64)
    reach = SPLAT_REACH * gaussians.scales()[torch.as_tensor(index)].amax(dim=1).cpu().numpy()
    extent = np.percentile(points, 99, axis=0) - np.percentile(points, 1, axis=0)
    return points, np.minimum(reach, 0.05 * np.linalg.norm(extent)).astype(np.float64)  # no giant splat rules


def choose_path(analysis: SceneAnalysis, requested: PathKind) -> tuple[PathKind, str]:
    """The path to take and why."""
    if requested != "auto":
        return requested, "as asked"
    if analysis.capture == "inside-out":
        return "dollhouse", f"inside-out capture: {analysis.reason}"
    if analysis.capture == "outside-in":
        return "orbit", f"outside-in capture: {analysis.reason}"
    return "orbit", analysis.reason


def plan_path(
    analysis: SceneAnalysis,
    points: np.ndarray,  # [S,3] content points
    radii: np.ndarray,  # [S] their splats' reach
    kind: PathKind,  # orbit, dollhouse or capture (as chosen)
    reason: str,
    spec: PathSpec,
) -> CameraPath:
    """The camera path of the preview, fitted to the content."""
    if kind == "capture":
        if analysis.camera_c2w is None:
            raise PreviewInputError("--path capture follows the training cameras: give --config")
        return capture_path(analysis.frame, analysis.camera_c2w, spec, reason)
    return ring_path(analysis.frame, points, spec, kind, analysis.camera_c2w, reason, radii)


def poster_frame(path: CameraPath, points: np.ndarray, camera_c2w: np.ndarray | None) -> int:
    """The frame showing most of the content; among equals, the one looking most like the capture did."""
    rotations, eyes = path.c2w[:, :, :3], path.c2w[:, :, 3]
    local = np.einsum("fji,fsj->fsi", rotations, points[None] - eyes[:, None])  # [F,S,3] OpenGL camera
    depth = -local[..., 2]
    tan_y = path.height / 2 / path.focal
    tan_x = tan_y * path.width / path.height
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = (
            (depth > 0) & (np.abs(local[..., 0]) <= depth * tan_x) & (np.abs(local[..., 1]) <= depth * tan_y)
        )
    if path.cuts is not None:
        inside &= ~hidden_by_cuts(points, path.cuts)
    shown = np.round(inside.mean(axis=1), 2)
    candidates = np.flatnonzero(shown == shown.max())
    if camera_c2w is None or len(candidates) == 1:
        return int(candidates[0])
    captured = normalized(-camera_c2w[:, :, 2]).mean(axis=0)
    agreement = -path.c2w[candidates, :, 2] @ captured
    return int(candidates[np.argmax(agreement)])
