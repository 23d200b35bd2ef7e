"""The flythrough: the capture condensed into a few seconds, along the views that show what it saw.

A splat is trustworthy where the capture stood. The flythrough picks key views along the smoothed,
levelled walk that together show what the capture saw (a greedy set cover of the content, as
image-based rendering and next-best-view planning choose views), keeps them in walk order, and joins
them with a cubic spline for positions and a rotation spline for orientations (scipy's). Frames are
spaced at constant perceived speed (the larger of turning and travel, travel counted as the angle it
sweeps at the capture's viewing distance), so neither a long walk nor a pan outruns the eye, and the
whole path is held to a budget of that speed (keys that add least are dropped until it fits). Where
frames between two keys are not supported by the training views, the walk's middle view between them
becomes a key as well.
Every frame is level (no roll). Unless the length is given, the video takes what its key views need
at that speed, 5 to 10 s, when that is as well supported as 5 s. Last, the whole path steps back along
its view axes, as far as every frame stays as well supported, to show more around what it looks at.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, RotationSpline

from splat_render.errors import PreviewInputError
from splat_render.framing import SceneFrame, normalized
from splat_render.orbit import DEFAULT_FRAMES, MAX_FRAMES, CameraPath, PathSpec, look_at
from splat_render.support import (
    SUPPORTED_SHARE,
    FrameSupport,
    Views,
    ViewSupport,
    frame_support,
    shown_points,
)
from splat_render.walkthrough import limit_pitch, smoothed_walk

COVER_GOAL, MIN_GAIN = 0.95, 0.02
"""Keys are added until they show this share of what the whole walk showed, or the next adds less
than this share of it."""

SECONDS_PER_KEY = 0.8  # at most one key per this much video: each view gets time to be seen
SPEED_DEG_S = 55.0
"""Peak perceived speed (turning, and travel as the angle it sweeps at the capture's viewing distance)."""

EASE = 0.15  # share of the video spent speeding up at the start and slowing down at the end
STEP_BACK = (0.3, 0.2, 0.1)
"""Shares of the capture's viewing distance the flythrough may step back along each frame's view axis
to show more around what the walk looked at, largest first. A step is taken only when every frame
stays as well supported: the support's 2× distance rule ends it in the open, and its depth test at a
wall behind (stepped through, the wall shows its unseen back)."""

REFINEMENTS = 3
DENSE_SAMPLES = 2048  # the path is measured on this many samples before frames are placed on it


def flythrough_path(
    frame: SceneFrame,
    training: Views,  # the training cameras in capture order
    support: ViewSupport,
    spec: PathSpec,
    reason: str = "",
) -> CameraPath:
    """The capture's key views in walk order, joined smoothly and re-timed to constant perceived speed."""
    if len(training) < 2:
        raise PreviewInputError("--path flythrough needs at least two training cameras")
    positions, forward = smoothed_walk(training.c2w)
    walk = look_at(positions, positions + limit_pitch(forward, frame.up), frame.up)
    seen = shown_points(support.points, Views(walk, training.tan_half), 0.0)[0] & support.observed  # [M,S]
    seen = seen.cpu().numpy()
    if spec.frames is not None:
        planned = _planned(
            _cover(seen, _most_keys(spec.frames, spec.fps)), walk, seen, support, frame.up, spec
        )
    else:
        # The length the keys need, if that length is as well supported as the default one: more keys
        # joined over a longer video can leave the capture between them.
        default = replace(spec, frames=DEFAULT_FRAMES)
        keys = _cover(seen, _most_keys(DEFAULT_FRAMES, spec.fps))
        planned = _planned(keys, walk, seen, support, frame.up, default)
        keys = _cover(seen, _most_keys(MAX_FRAMES, spec.fps))
        frames = _frames_for(_costs(walk[keys], support.scale).sum(), spec.fps)
        if frames > DEFAULT_FRAMES:
            longer = _planned(keys, walk, seen, support, frame.up, replace(spec, frames=frames))
            planned = longer if longer[0] >= planned[0] else planned
    _, c2w, key_count, measured = planned
    c2w, step = _stepped_back(c2w, measured, support, spec)
    note = f"flies through {key_count} key views of the capture"
    if step:
        note += f", {step:.0%} of the viewing distance behind them"
    note = f"{reason}; {note}" if reason else note
    return CameraPath(c2w, spec.fov_y_deg, spec.width, spec.height, spec.fps, "flythrough", note)


def _most_keys(frames: int, fps: int) -> int:
    return max(2, int(frames / fps / SECONDS_PER_KEY))


def _planned(
    keys: np.ndarray,
    walk: np.ndarray,  # [M,3,4] the smoothed, levelled walk
    seen: np.ndarray,  # [M,S] what each pose of the walk shows
    support: ViewSupport,
    up: np.ndarray,
    spec: PathSpec,  # its frames set
) -> tuple[float, np.ndarray, int, FrameSupport]:
    """The best supported path through the keys (share of supported frames, frames [F,3,4], key count,
    what its frames show): held to the speed budget, with a key added where frames between two keys
    leave the support."""
    budget = _speed() * spec.frames / spec.fps
    best: tuple[float, np.ndarray, int, FrameSupport] | None = None
    for _ in range(REFINEMENTS + 1):
        keys = _within_budget(keys, walk, seen, support.scale, budget)
        c2w, segment = _through_keys(walk[keys], support.scale, up, spec)
        frames = frame_support(support, Views.of_path(c2w, spec.fov_y_deg, spec.width, spec.height))
        if best is None or frames.supported_frames() > best[0]:
            best = (frames.supported_frames(), c2w, len(keys), frames)
        weak = np.unique(segment[frames.shares() < SUPPORTED_SHARE])
        middles = {(keys[i] + keys[i + 1]) // 2 for i in weak if keys[i + 1] - keys[i] > 1}
        if not middles:
            break
        keys = np.array(sorted(set(keys.tolist()) | middles))
    return best


def _stepped_back(
    c2w: np.ndarray, base: FrameSupport, support: ViewSupport, spec: PathSpec
) -> tuple[np.ndarray, float]:
    """The frames stepped back along their view axes by the largest of STEP_BACK that keeps every
    frame as well supported as ``base`` (what the frames show in place) and shows more of what the
    capture saw; and that share (0: not moved)."""
    supported, coverage = base.supported_frames(), base.coverage(support) + MIN_GAIN
    for share in STEP_BACK:
        stepped = c2w.copy()
        stepped[:, :, 3] += share * support.scale * c2w[:, :, 2]  # an OpenGL camera looks down −z
        frames = frame_support(support, Views.of_path(stepped, spec.fov_y_deg, spec.width, spec.height))
        if frames.supported_frames() >= supported and frames.coverage(support) >= coverage:
            return stepped, share
    return c2w, 0.0


def _speed() -> float:
    """Radians of perceived change per second, averaged over a path that eases in and out at peak speed."""
    return math.radians(SPEED_DEG_S) * (1 - EASE / 2)


def _frames_for(cost: float, fps: int) -> int:
    """The video's length for a path of this perceived change: 5 s at least, 10 s at most."""
    return int(np.clip(math.ceil(cost / _speed() * fps), DEFAULT_FRAMES, MAX_FRAMES))


def _cover(seen: np.ndarray, most: int) -> np.ndarray:
    """Walk indices, in walk order, of views that together show what the walk showed (greedy set cover)."""
    total = seen.any(axis=0).sum()
    covered = np.zeros(seen.shape[1], dtype=bool)
    keys: list[int] = []
    while len(keys) < most and covered.sum() < COVER_GOAL * total:
        gains = (seen & ~covered).sum(axis=1)
        best = int(np.argmax(gains))
        if gains[best] < MIN_GAIN * total:
            break
        keys.append(best)
        covered |= seen[best]
    if len(keys) < 2:  # one view shows it all: drift from there towards the far end of the walk
        first = keys[0] if keys else 0
        keys.append(0 if first > (len(seen) - 1) / 2 else len(seen) - 1)
    return np.array(sorted(set(keys)))


def _costs(c2w: np.ndarray, scale: float) -> np.ndarray:
    """[K-1] perceived change between consecutive poses: the larger of the turn (radians) and the
    travel over the viewing distance (the angle it sweeps there; circling an object does both at once)."""
    rotations = Rotation.from_matrix(c2w[:, :, :3])
    turn = (rotations[1:] * rotations[:-1].inv()).magnitude()
    travel = np.linalg.norm(np.diff(c2w[:, :, 3], axis=0), axis=1) / scale
    return np.maximum(turn, travel)


def _within_budget(
    keys: np.ndarray, walk: np.ndarray, seen: np.ndarray, scale: float, budget: float
) -> np.ndarray:
    """Drop, one at a time, the inner key adding least to what the keys show, until the path fits."""
    keys = keys.copy()
    while len(keys) > 2 and _costs(walk[keys], scale).sum() > budget:
        counts = seen[keys].sum(axis=0)
        unique = np.array([(seen[k] & (counts == 1)).sum() for k in keys[1:-1]])
        keys = np.delete(keys, 1 + int(np.argmin(unique)))
    return keys


def _through_keys(
    keys: np.ndarray, scale: float, up: np.ndarray, spec: PathSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Frames [F,3,4] joining the key poses [K,3,4] smoothly at constant perceived speed, easing in and
    out, and the key segment each frame lies in [F]."""
    knots = np.concatenate([[0.0], np.cumsum(_costs(keys, scale) + 1e-6)])
    positions = CubicSpline(knots, keys[:, :, 3], bc_type="clamped")
    turning = RotationSpline(knots, Rotation.from_matrix(keys[:, :, :3]))
    dense = np.linspace(0.0, knots[-1], DENSE_SAMPLES)
    poses = _levelled(positions(dense), turning(dense).as_matrix(), up)
    travelled = np.concatenate([[0.0], np.cumsum(_costs(poses, scale))])
    goal = _eased(np.linspace(0.0, 1.0, spec.frames)) * travelled[-1]
    at = np.interp(goal, travelled, dense)
    c2w = _levelled(positions(at), turning(at).as_matrix(), up)
    return c2w, np.clip(np.searchsorted(knots, at, side="right") - 1, 0, len(keys) - 2)


def _levelled(eyes: np.ndarray, rotations: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Cameras at ``eyes`` looking as ``rotations`` do, their horizon level with ``up`` (no roll)."""
    forward = limit_pitch(normalized(-rotations[:, :, 2]), up)
    return look_at(eyes, eyes + forward, up)


def _eased(progress: np.ndarray) -> np.ndarray:
    """Share of the path covered at each share of the time: constant speed, eased at both ends."""
    ramp = EASE / 2
    peak = 1 / (1 - ramp)  # the speed that covers the path in time when the ends take EASE of it
    start = peak * progress**2 / (2 * ramp)
    middle = peak * (progress - ramp / 2)
    end = 1 - peak * (1 - progress) ** 2 / (2 * ramp)
    return np.where(progress < ramp, start, np.where(progress > 1 - ramp, end, middle))
