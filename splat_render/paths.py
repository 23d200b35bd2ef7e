"""Which camera path a preview takes, fitted to what the capture saw, and which frame makes the poster.

With training cameras, ``auto`` plans every candidate (an **orbit** of the content, a **flythrough**
of the capture, a **dollhouse** of the room) and scores each on its frames' view support
(``splat_render.support``): the share of frames the training views vouch for, the share of what the
capture saw that the path shows from a supported direction, and how fast it turns. It takes the
preferred path among the well supported ones whose coverage is near the best, else the best
supported. Without cameras (a PLY alone) nothing can be scored: an orbit of the content's box.
The choice, its reason and the figures travel with the path, for the summary line and the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from splat_render.analysis import SceneAnalysis
from splat_render.errors import PreviewInputError
from splat_render.flythrough import flythrough_path
from splat_render.framing import MIN_OPACITY, inside_box, normalized
from splat_render.gaussians import Gaussians
from splat_render.motion import Motion, motion
from splat_render.orbit import CameraPath, PathKind, PathSpec, hidden_by_cuts, ring_path
from splat_render.support import SUPPORTED_SHARE, Views, ViewSupport, frame_support, view_support
from splat_render.walkthrough import capture_path

CONTENT_SAMPLE = 2000
"""Content points the path is fitted to: an even stride through them, plenty for 1 % quantiles."""

SUPPORT_SAMPLE = 4000
"""Content points view support is judged on: a wall seen from two metres holds a few dozen of them."""

SPLAT_REACH = 2.0
"""A splat shows to about two standard deviations of its largest axis (alpha falls to e⁻² there)."""

DOLLHOUSE_MARGIN = 0.1  # share of the room's half extents beyond its box still drawn in a dollhouse

CANDIDATES: tuple[PathKind, ...] = ("orbit", "dollhouse", "flythrough")
"""What ``auto`` considers, in order of preference among paths that score alike: an orbit shows an
object best, a dollhouse a room's layout, a flythrough whatever the capture walked through."""

WELL_SUPPORTED = 0.9  # share of supported frames that makes a path a choice in its own right
COVERAGE_SLACK = 0.1  # a preferred path may show this much less of the capture than the best
MAX_TURN_DEG_S = 90.0  # faster than this is a whip pan: not a well-supported choice


@dataclass(frozen=True)
class PathScore:
    supported: float  # share of frames the training views support
    coverage: float  # share of what the capture saw that the path shows from a supported direction
    motion: Motion
    frame_shares: np.ndarray  # [F] share of each frame's content that is supported

    def summary(self) -> str:
        return (
            f"{self.supported:.0%} of frames supported, shows {self.coverage:.0%} of what the capture saw, "
            f"turns at most {self.motion.max_turn_deg_s:.0f}°/s"
        )

    def figures(self) -> dict[str, float]:
        return {
            "supported_frames": round(self.supported, 4),
            "coverage": round(self.coverage, 4),
            "max_turn_deg_s": round(self.motion.max_turn_deg_s, 2),
            "typical_turn_deg_s": round(self.motion.typical_turn_deg_s, 2),
            "max_roll_deg": round(self.motion.max_roll_deg, 2),
        }


@dataclass(frozen=True)
class PlannedPath:
    """A camera path, the gaussians it draws [N] and the content points [S,3] it frames, and its score."""

    path: CameraPath
    shown: np.ndarray
    points: np.ndarray
    score: PathScore | None


def content_points(
    analysis: SceneAnalysis, gaussians: Gaussians, drawn: np.ndarray, count: int = CONTENT_SAMPLE
) -> tuple[np.ndarray, np.ndarray]:
    """An even sample of the drawn, visible content gaussians: centres [S,3] and how far they reach [S]."""
    means = gaussians.means.cpu().numpy()
    content = analysis.content & drawn & np.isfinite(means).all(axis=1)
    chosen = content & (gaussians.opacities().cpu().numpy() >= MIN_OPACITY)
    if not chosen.any():
        chosen = content if content.any() else analysis.content
    index = np.flatnonzero(chosen)[:: max(1, int(chosen.sum()) // count)]
    points = means[index].astype(np.float64)
    reach = SPLAT_REACH * gaussians.scales()[torch.as_tensor(index)].amax(dim=1).cpu().numpy()
    extent = np.percentile(points, 99, axis=0) - np.percentile(points, 1, axis=0)
    return points, np.minimum(reach, 0.05 * np.linalg.norm(extent)).astype(np.float64)  # no giant splat rules


def capture_support(analysis: SceneAnalysis, gaussians: Gaussians) -> ViewSupport | None:
    """What the training views saw of the content, or None without training cameras."""
    if analysis.views is None:
        return None
    points, _ = content_points(analysis, gaussians, analysis.shown, SUPPORT_SAMPLE)
    return view_support(points, analysis.views, gaussians.device)


def score_path(path: CameraPath, support: ViewSupport, up: np.ndarray) -> PathScore:
    """How well the training views support a path's frames, how much it shows, how it moves."""
    frames = frame_support(support, Views.of_path(path.c2w, path.fov_y_deg, path.width, path.height))
    return PathScore(
        frames.supported_frames(), frames.coverage(support), motion(path.c2w, path.fps, up), frames.shares()
    )


def plan_path(
    analysis: SceneAnalysis,
    gaussians: Gaussians,
    support: ViewSupport | None,
    kind: PathKind,  # orbit, dollhouse, flythrough or capture
    spec: PathSpec,
    keep_unobserved: bool = False,
    reason: str = "",
) -> PlannedPath:
    """One path of the given kind fitted to the content, with what it draws and, given support, its score."""
    means = gaussians.means.cpu().numpy()
    shown = np.ones(len(means), dtype=bool) if keep_unobserved else analysis.shown
    if kind == "dollhouse":  # the room alone: what lies outside it was seen from inside, not from here
        shown = shown & inside_box(analysis.frame, means, DOLLHOUSE_MARGIN)
    points, radii = content_points(analysis, gaussians, shown)
    if kind in ("capture", "flythrough") and analysis.views is None:
        raise PreviewInputError(f"--path {kind} follows the training cameras: give --config")
    if kind == "capture":
        path = capture_path(analysis.frame, analysis.camera_c2w, spec, reason)
    elif kind == "flythrough":
        path = flythrough_path(analysis.frame, analysis.views, support, spec, reason)
    else:
        path = ring_path(analysis.frame, points, spec, kind, analysis.camera_c2w, reason, radii)
    score = None if support is None else score_path(path, support, analysis.frame.up)
    if score is not None:
        path = replace(path, reason=f"{path.reason}; {score.summary()}", figures=score.figures())
    return PlannedPath(path, shown, points, score)


def choose_path(
    analysis: SceneAnalysis,
    gaussians: Gaussians,
    spec: PathSpec,
    keep_unobserved: bool = False,
) -> PlannedPath:
    """The path the spec asks for; for ``auto``, the candidate the training views support best."""
    support = capture_support(analysis, gaussians)
    if spec.kind != "auto":
        return plan_path(analysis, gaussians, support, spec.kind, spec, keep_unobserved, "as asked")
    if support is None:
        return plan_path(analysis, gaussians, None, "orbit", spec, keep_unobserved, analysis.reason)
    planned = {
        kind: plan_path(analysis, gaussians, support, kind, spec, keep_unobserved) for kind in CANDIDATES
    }
    kind = best_supported({kind: plan.score for kind, plan in planned.items()})
    figures = ", ".join(
        f"{name} {plan.score.supported:.0%}/{plan.score.coverage:.0%}" for name, plan in planned.items()
    )
    reason = f"{analysis.capture} capture; best supported (frames/coverage: {figures})"
    chosen = planned[kind]
    return replace(chosen, path=replace(chosen.path, reason=f"{reason}; {chosen.path.reason}"))


def best_supported(scores: dict[PathKind, PathScore]) -> PathKind:
    """The preferred kind among the well supported, calm paths whose coverage is near the best; else
    the path with the most supported frames (then the most coverage)."""
    good = [
        kind
        for kind in CANDIDATES
        if kind in scores
        and scores[kind].supported >= WELL_SUPPORTED
        and scores[kind].motion.max_turn_deg_s <= MAX_TURN_DEG_S
    ]
    if good:
        top = max(scores[kind].coverage for kind in good)
        return next(kind for kind in good if scores[kind].coverage >= top - COVERAGE_SLACK)
    return max(scores, key=lambda kind: (scores[kind].supported, scores[kind].coverage))


def poster_frame(
    path: CameraPath, points: np.ndarray, camera_c2w: np.ndarray | None, shares: np.ndarray | None = None
) -> int:
    """The supported frame showing most of the content; among equals, the most like the capture's views."""
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
    if shares is not None and (shares >= SUPPORTED_SHARE).any():
        shown = np.where(shares >= SUPPORTED_SHARE, shown, -1.0)
    candidates = np.flatnonzero(shown == shown.max())
    if camera_c2w is None or len(candidates) == 1:
        return int(candidates[0])
    captured = normalized(-camera_c2w[:, :, 2]).mean(axis=0)
    agreement = -path.c2w[candidates, :, 2] @ captured
    return int(candidates[np.argmax(agreement)])
