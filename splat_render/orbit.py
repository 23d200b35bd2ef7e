"""Camera paths that circle the content: the orbit, and the dollhouse (an orbit with a cutaway).

The distance is solved, not guessed: in each frame, the content's points are projected with the
camera's own intrinsics and the distance is found at which their robust extent spans ``fill`` of
the frame's limiting dimension; the distances are then smoothed along the path (an ellipse for a long
room), and pushed out wherever a frame would cut the content. Each frame also carries cut planes:
whatever lies between the camera and the content is not drawn (a wall behind which an object was
captured, a lamp post in front of a statue), and a dollhouse drops the ceiling and the near walls so
that the interior shows. Cameras are OpenGL camera-to-world in the training frame (x right, y up,
z backward), which is also what nerfstudio's camera-path JSON holds.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from splat_render.errors import PreviewInputError
from splat_render.framing import SceneFrame, normalized
from splat_render.outputs import check_writable, published_together
from splat_render.sizes import PATH_KINDS, PathKind

MIN_FRAME_SIZE, MAX_FRAME_SIZE = 16, 7680
MIN_FRAMES, DEFAULT_FRAMES, MAX_FRAMES = 90, 150, 300
VIEW_AGREEMENT = 0.5  # mean length of the training cameras' horizontal view directions that counts as one way
DEFAULT_ELEVATION = {"orbit": 35.0, "dollhouse": 45.0}  # a dollhouse looks down into the room
ORBIT_ELEVATION_BAND = (30.0, 45.0)  # the classic orbit's, taken when the cameras looked from there
CAMERA_ELEVATION_PERCENTILES = (10, 90)  # the band the cameras looked from, without stray frames
CAPTURE_ELEVATION_LIMITS = (-30.0, 60.0)  # an orbit never looks up steeper or down steeper than this
CAMERA_DISTANCE_PERCENTILES = (5, 95)  # an orbit stays within the range of the cameras' distances

ROBUST_SHARE = 0.01
"""Share of the content's points allowed outside the fitted extent on each side (stray residue)."""

REACH_SHARE = 0.002
"""Share of the content's points that may lie beyond MAX_REACH (cut off at the frame's edge)."""

MAX_REACH = 0.9
"""No robust content point lies further than this from the image centre, as a share of the half
frame (the rest is room for the splats' own size): what is cut off is at most a sliver."""

SMOOTHING = 0.08
"""Width of the smoothing of distances along the path, as a share of the path."""

LOOP_GAP_DEG = 100.0
"""Cameras leaving a gap in azimuth wider than this around the content did not surround it: the
orbit sweeps what they covered, once, instead of showing the unseen side."""

SWEEP_MARGIN_DEG = 10.0  # beyond the outermost cameras on either side: within view support
MIN_SWEEP_DEG = 60.0

CUT_MARGIN = 0.05
"""The occluder cut lies this share of the content's largest half extent beyond the content."""

WALL_CUT = 0.85
"""A dollhouse hides, per frame, what lies beyond this share of the room's half extent on the sides of
the room that face the camera (the near walls)..."""

FACING = math.cos(math.radians(70))
"""A side of the room faces the camera when the camera's horizontal direction is within 70° of it;
walls seen edge-on stay."""

SKIRTING = 0.06
"""...above this share of the room's height over its floor: the floor itself and a low edge of the near
walls stay, so the room keeps its outline."""

NO_PLANE = (0.0, 0.0, 0.0, -1.0)  # every point lies beyond it (0 > -1): pads a cut of fewer planes
NOTHING = (0.0, 0.0, 0.0, 1.0)  # no point lies beyond it: a cut that hides nothing

CEILING_ABOVE_CAMERAS = 0.15  # the ceiling cut: this share of the room height above the cameras' eyes...
CEILING_BELOW_TOP = 0.08  # ...but at least this share of it below the top of the room


@dataclass(frozen=True)
class PathSpec:
    """What the preview video should look like; every field is checked on construction."""

    kind: PathKind = "auto"
    frames: int | None = None  # None: DEFAULT_FRAMES (5 s at 30 fps); a flythrough takes up to MAX_FRAMES
    fps: int = 30
    arc_deg: float | None = None  # None: a loop if the cameras surround the content, else their sweep
    elevation_deg: float | None = None  # None: 35° for the orbit, 45° for the dollhouse
    fov_y_deg: float = 50.0
    width: int = 1920
    height: int = 1080
    fill: float = 0.8  # share of the frame's limiting dimension the content spans
    start_azimuth_deg: float | None = None  # None: look the way the training cameras looked, if known

    def __post_init__(self) -> None:
        if self.kind not in PATH_KINDS:
            raise PreviewInputError(f"path must be one of {', '.join(PATH_KINDS)}, got {self.kind!r}")
        if self.frames is not None:
            _check_range("frames", self.frames, MIN_FRAMES, MAX_FRAMES)
        _check_range("fps", self.fps, 15, 60)
        if self.arc_deg is not None:
            _check_range("arc_deg", self.arc_deg, 30.0, 360.0)
        if self.elevation_deg is not None:
            _check_range("elevation_deg", self.elevation_deg, 15.0, 60.0)
        _check_range("fov_y_deg", self.fov_y_deg, 20.0, 90.0)
        _check_range("width", self.width, MIN_FRAME_SIZE, MAX_FRAME_SIZE)
        _check_range("height", self.height, MIN_FRAME_SIZE, MAX_FRAME_SIZE)
        _check_range("fill", self.fill, 0.3, 0.95)
        if self.width % 2 or self.height % 2:
            raise PreviewInputError(
                f"width and height must be even for H.264 yuv420p, got {self.width}x{self.height}"
            )
        if self.start_azimuth_deg is not None and not math.isfinite(self.start_azimuth_deg):
            raise PreviewInputError(f"start_azimuth_deg must be finite, got {self.start_azimuth_deg}")

    @property
    def frame_count(self) -> int:
        """Frames of a path that does not choose its own length."""
        return DEFAULT_FRAMES if self.frames is None else self.frames


def _check_range(name: str, value: float, low: float, high: float) -> None:
    """One-line error unless value is a number of low's kind (integer or real) in [low, high]."""
    kind = numbers.Integral if isinstance(low, int) else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        raise PreviewInputError(f"{name} must be between {low} and {high}, got {value!r}")


@dataclass(frozen=True)
class CameraPath:
    """Cameras of a video: one pinhole model (principal point at the centre) for all frames.

    ``cuts`` [N,K,P,4] holds, per frame, K cuts of P planes (unit normal, offset) each: a point p
    beyond every plane of a cut (n·p > offset) is not drawn in that frame. ``kind`` and ``reason``
    say which path this is and why, ``figures`` how well the training views support it.
    """

    c2w: np.ndarray  # [N,3,4] float64, OpenGL camera-to-world, training frame
    fov_y_deg: float
    width: int
    height: int
    fps: int
    kind: str = "orbit"
    reason: str = ""
    cuts: np.ndarray | None = None
    figures: dict[str, float] | None = None  # its view support and motion, when scored

    @property
    def frames(self) -> int:
        return self.c2w.shape[0]

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def focal(self) -> float:
        """fx = fy in pixels, as nerfstudio derives it from a vertical field of view."""
        return self.height / 2 / math.tan(math.radians(self.fov_y_deg) / 2)

    def intrinsics(self) -> np.ndarray:
        """K [3,3] with the principal point at the image centre."""
        return np.array(
            [[self.focal, 0.0, self.width / 2], [0.0, self.focal, self.height / 2], [0.0, 0.0, 1.0]]
        )


def look_at(
    eyes: np.ndarray,  # [N,3]
    target: np.ndarray,  # (3,) or [N,3]
    up: np.ndarray,  # (3,) world up; must not be parallel to a viewing direction
) -> np.ndarray:
    """OpenGL camera-to-world [N,3,4] of cameras at `eyes` looking at `target`, level with `up`."""
    backward = normalized(eyes - target)
    right = normalized(np.cross(up, backward))
    camera_up = np.cross(backward, right)
    return np.concatenate([np.stack([right, camera_up, backward], axis=-1), eyes[:, :, None]], axis=-1)


def ring_path(
    frame: SceneFrame,
    points: np.ndarray,  # [S,3] a sample of the content's points, what the frames must hold
    spec: PathSpec,
    kind: Literal["orbit", "dollhouse"],
    camera_c2w: np.ndarray | None = None,  # [M,3,4] training cameras: the arc and the start
    reason: str = "",
    radii: np.ndarray | None = None,  # [S] how far each point's splat reaches beyond its centre
) -> CameraPath:
    """An orbit (or dollhouse) around the content, fitted to its points, with per-frame cut planes."""
    radii = np.zeros(len(points)) if radii is None else radii
    ceiling = _ceiling_cut(frame, camera_c2w) if kind == "dollhouse" else None
    if ceiling is not None:
        below = ~hidden_by_cuts(points, ceiling[None, None])[0]
        points, radii = points[below], radii[below]
    target = _robust_center(points, frame)
    elevation_deg, elevation_note = _elevation(frame, target, spec, kind, camera_c2w)
    elevation = math.radians(elevation_deg)
    azimuths, arc_note = _azimuths(frame, target, spec, camera_c2w, loop_only=kind == "dollhouse")
    horizontal = np.cos(azimuths)[:, None] * frame.axes[0] + np.sin(azimuths)[:, None] * frame.axes[1]
    directions = math.cos(elevation) * horizontal + math.sin(elevation) * frame.up  # target → camera
    rotations = look_at(directions, np.zeros(3), frame.up)[:, :, :3]  # the same at every distance
    cuts = _occluder_cuts(frame, points, target, directions, horizontal, kind)
    if ceiling is not None:
        cuts = np.concatenate([cuts, np.broadcast_to(ceiling, (len(cuts), 1, *ceiling.shape))], axis=1)
    closed = arc_note == "loop"
    # The fit runs on key frames (distances and views change slowly along the path) and is
    # interpolated between them: a 300-frame path costs what a 48-frame one does.
    keys = _key_frames(len(directions), closed)
    content = (points - target, radii, ~hidden_by_cuts(points, cuts[keys]))
    rotations, directions_k = rotations[keys], directions[keys]
    distances = _fitted_distances(rotations, directions_k, content, spec, closed)
    # Perspective pushes the near side of the content off-centre: turn each camera (level) to the
    # middle of the content's image and fit the distances again for those views, twice (the second
    # turn is a fraction of the first).
    for _ in range(2):
        rotations = _centred(rotations, directions_k, distances, content, frame.up, spec)
        distances = _fitted_distances(rotations, directions_k, content, spec, closed)
    distances = _between_keys(keys, distances, len(directions), closed)
    if kind == "orbit" and camera_c2w is not None:
        # Where the cameras stood is what the splat can be trusted from: no farther, no nearer.
        reach = np.linalg.norm(camera_c2w[:, :, 3] - target, axis=1)
        distances = np.clip(distances, *np.percentile(reach, CAMERA_DISTANCE_PERCENTILES))
    forward = normalized(_between_keys(keys, -rotations[:, :, 2], len(directions), closed))
    rotations = look_at(-forward, np.zeros(3), frame.up)[:, :, :3]
    positions = target + distances[:, None] * directions
    c2w = np.concatenate([rotations, positions[:, :, None]], axis=-1)
    note = f"{arc_note} at {elevation_note}"
    note = f"{reason}; {note}" if reason else note
    return CameraPath(c2w, spec.fov_y_deg, spec.width, spec.height, spec.fps, kind, note, cuts)


def _elevation(
    frame: SceneFrame,
    target: np.ndarray,
    spec: PathSpec,
    kind: str,
    camera_c2w: np.ndarray | None,
) -> tuple[float, str]:
    """Degrees above the horizon to look from, and a note saying why.

    As asked; else an orbit looks from where the cameras looked: the classic 30–45° band when their
    elevations reach into it, else their own band (an object filmed at eye level is orbited at eye
    level, where the splat knows it). A dollhouse looks down into the room at its default.
    """
    if spec.elevation_deg is not None:
        return spec.elevation_deg, f"{spec.elevation_deg:.0f}° as asked"
    if kind != "orbit" or camera_c2w is None:
        return DEFAULT_ELEVATION[kind], f"{DEFAULT_ELEVATION[kind]:.0f}°"
    offsets = camera_c2w[:, :, 3] - target
    heights = offsets @ frame.up
    angles = np.degrees(np.arctan2(heights, np.linalg.norm(offsets - heights[:, None] * frame.up, axis=1)))
    low, high = np.percentile(angles, CAMERA_ELEVATION_PERCENTILES)
    seed_low, seed_high = ORBIT_ELEVATION_BAND
    if high >= seed_low and low <= seed_high:
        chosen = float(np.clip(DEFAULT_ELEVATION["orbit"], max(low, seed_low), min(high, seed_high)))
    else:
        chosen = float(np.clip(np.median(angles), *CAPTURE_ELEVATION_LIMITS))
    return chosen, f"{chosen:.0f}°, where the cameras stood ({low:.0f}° to {high:.0f}°)"


MAX_KEY_FRAMES = 48


def _key_frames(frames: int, closed: bool) -> np.ndarray:
    """Evenly spaced frame indices to fit on; an open path keeps both of its ends."""
    count = min(frames, MAX_KEY_FRAMES)
    if closed:
        return np.unique(np.round(np.arange(count) * frames / count).astype(int))
    return np.unique(np.round(np.linspace(0, frames - 1, count)).astype(int))


def _between_keys(keys: np.ndarray, values: np.ndarray, frames: int, closed: bool) -> np.ndarray:
    """[K] or [K,D] values at the key frames, linearly interpolated to every frame (a loop wraps)."""
    columns = values.reshape(len(keys), -1)
    every = np.arange(frames)
    period = frames if closed else None
    out = np.stack([np.interp(every, keys, column, period=period) for column in columns.T], axis=1)
    return out.reshape(frames, *values.shape[1:])


def _robust_center(points: np.ndarray, frame: SceneFrame) -> np.ndarray:
    """The middle of the points' robust box along the frame's axes: what the camera looks at."""
    low, high = np.percentile(points @ frame.axes.T, [100 * ROBUST_SHARE, 100 * (1 - ROBUST_SHARE)], axis=0)
    return (low + high) / 2 @ frame.axes


def _azimuths(
    frame: SceneFrame,
    target: np.ndarray,
    spec: PathSpec,
    camera_c2w: np.ndarray | None,
    loop_only: bool,
) -> tuple[np.ndarray, str]:
    """Azimuths (radians) of the frames, and a note: a loop, a given arc, or the capture's sweep."""
    steps = np.arange(spec.frame_count)
    if spec.arc_deg is None and not loop_only and camera_c2w is not None:
        sweep = _covered_arc(frame, target, camera_c2w)
        if sweep is not None:
            start, span = sweep
            eased = (
                1 - np.cos(math.pi * steps / (spec.frame_count - 1))
            ) / 2  # one way: a return doubles the turning
            return np.deg2rad(start + span * eased), f"sweeps the {span:.0f}° the cameras covered"
    start = spec.start_azimuth_deg
    if start is None:
        start = _training_view_azimuth(frame, camera_c2w)
    arc = 360.0 if spec.arc_deg is None else spec.arc_deg
    if arc == 360.0:
        return np.deg2rad(
            start + 360.0 * steps / spec.frame_count
        ), "loop"  # the frame after the last is the first
    return np.deg2rad(start + arc * steps / (spec.frame_count - 1)), f"{arc:.0f}° arc"


def _covered_arc(frame: SceneFrame, target: np.ndarray, camera_c2w: np.ndarray) -> tuple[float, float] | None:
    """(start, span) in degrees of the azimuths the cameras covered, with margins; None if they surround."""
    offsets = camera_c2w[:, :, 3] - target
    angles = np.sort(np.degrees(np.arctan2(offsets @ frame.axes[1], offsets @ frame.axes[0])))
    gaps = np.diff(np.concatenate([angles, angles[:1] + 360.0]))
    widest = int(np.argmax(gaps))
    if gaps[widest] <= LOOP_GAP_DEG:
        return None
    span = max(360.0 - gaps[widest] + 2 * SWEEP_MARGIN_DEG, MIN_SWEEP_DEG)
    if span >= 360.0 - LOOP_GAP_DEG / 2:
        return None
    first = angles[(widest + 1) % len(angles)]  # the sweep starts after the gap and runs round to it
    covered_middle = first + (360.0 - gaps[widest]) / 2
    return covered_middle - span / 2, span


def hidden_by_cuts(points: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """[F,S]: which of the points [S,3] each frame's cuts [F,K,P,4] hide (beyond all planes of a cut)."""
    beyond = np.einsum("sj,fkpj->fskp", points, cuts[..., :3]) > cuts[:, None, :, :, 3]
    return beyond.all(axis=3).any(axis=2)


def _ceiling_cut(frame: SceneFrame, camera_c2w: np.ndarray | None) -> np.ndarray:
    """The dollhouse's ceiling cut [P,4]: a little above the cameras' eyes, below the top of the room."""
    height = 2 * frame.half_extent[2]
    top = frame.center @ frame.up + frame.half_extent[2]
    cut = top - CEILING_BELOW_TOP * height
    if camera_c2w is not None:
        eyes = np.percentile(camera_c2w[:, :, 3] @ frame.up, 90)
        cut = min(cut, eyes + CEILING_ABOVE_CAMERAS * height)
    return np.array([[*frame.up, cut], NO_PLANE])


def _occluder_cuts(
    frame: SceneFrame,
    points: np.ndarray,
    target: np.ndarray,
    directions: np.ndarray,  # [F,3] target → camera
    horizontal: np.ndarray,  # [F,3] their horizontal part, unit
    kind: str,
) -> np.ndarray:
    """Per frame the cuts [F,K,P,4] between camera and content: beyond them nothing is drawn.

    The orbit's one plane faces the camera just outside the content, so only what stands between
    camera and content goes. The dollhouse cuts each side of the room that faces the camera just
    inside its wall, above a skirting: the near walls go, the floor and the far walls stay.
    """
    frames = len(directions)
    if kind == "orbit":
        reach = ((points - target) @ directions.T).max(axis=0)  # all of the content stays
        offsets = directions @ target + reach + CUT_MARGIN * frame.half_extent.max()
        plane = np.concatenate([directions, offsets[:, None]], axis=1)
        return np.stack([plane, np.broadcast_to(NO_PLANE, (frames, 4))], axis=1)[:, None]
    skirting = frame.center @ frame.up - frame.half_extent[2] * (1 - 2 * SKIRTING)
    above_skirting = np.broadcast_to([*frame.up, skirting], (frames, 4))
    walls = []
    for axis, half in zip(frame.axes[:2], frame.half_extent[:2], strict=True):
        facing = horizontal @ axis  # [F]
        normals = np.sign(facing)[:, None] * axis
        offsets = normals @ frame.center + WALL_CUT * half
        wall = np.concatenate([normals, offsets[:, None]], axis=1)
        wall = np.where((np.abs(facing) >= FACING)[:, None], wall, NOTHING)
        walls.append(np.stack([wall, above_skirting], axis=1))
    return np.stack(walls, axis=1)


Content = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Points [S,3] relative to the target, their splats' radii [S], which points each frame draws [F,S]."""


def _image_coordinates(rotations: np.ndarray, directions: np.ndarray, content: Content, spec: PathSpec):
    """A function of the distances [F] giving the content's image extent: where each splat starts
    and ends (low, high [2,F,S] in half-frames along u and v) and whether content lies behind the
    camera [F]. Hidden points sit at the image centre, inside every quantile."""
    local_points, radii, visible = content
    tan_y = math.tan(math.radians(spec.fov_y_deg) / 2)
    scale = np.array([tan_y * spec.width / spec.height, tan_y])[:, None, None]  # [2,1,1]: u, v
    local = np.einsum("fji,sj->fsi", rotations, local_points)  # [F,S,3] camera axes, origin at the target
    along = np.einsum("fji,fj->fi", rotations, directions)  # [F,3] the camera's offset direction, same axes

    def project(distance: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        camera = local - distance[:, None, None] * along[:, None, :]  # [F,S,3] camera coordinates
        depth = -camera[..., 2]
        behind = np.mean(visible & (depth <= 0), axis=1) > ROBUST_SHARE
        safe = np.maximum(depth, 1e-9) * scale  # [2,F,S]
        centre = np.moveaxis(camera[..., :2], -1, 0)  # [2,F,S]
        low = np.where(visible, (centre - radii) / safe, 0.0)
        high = np.where(visible, (centre + radii) / safe, 0.0)
        return low, high, behind

    return project


def _fitted_distances(
    rotations: np.ndarray, directions: np.ndarray, content: Content, spec: PathSpec, closed: bool
) -> np.ndarray:
    """Per-frame distance from the target: the fill where it can be, smoothed, never cutting content."""
    project = _image_coordinates(rotations, directions, content, spec)

    def measure(distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low, high, behind = project(distance)
        start, outer_start = np.quantile(low, [ROBUST_SHARE, REACH_SHARE], axis=2)  # each [2,F]
        end, outer_end = np.quantile(high, [1 - ROBUST_SHARE, 1 - REACH_SHARE], axis=2)
        span = ((end - start) / 2).max(axis=0)
        reach = np.maximum(np.abs(outer_start), np.abs(outer_end)).max(axis=0)
        return np.where(behind, np.inf, span), np.where(behind, np.inf, reach)

    size = np.quantile(np.linalg.norm(content[0], axis=1), 1 - ROBUST_SHARE)
    fitted = _solve(lambda d: measure(d)[0], spec.fill, size, len(rotations))
    fitted = smooth_along(fitted, max(1.0, SMOOTHING * len(fitted)), closed)
    uncut = _solve(lambda d: measure(d)[1], MAX_REACH, size, len(rotations))
    return np.maximum(fitted, uncut)


def _centred(
    rotations: np.ndarray,
    directions: np.ndarray,
    distances: np.ndarray,
    content: Content,
    up: np.ndarray,
    spec: PathSpec,
) -> np.ndarray:
    """Rotations [F,3,3] turned, level, towards the middle of the content's robust image box."""
    low, high, _ = _image_coordinates(rotations, directions, content, spec)(distances)
    middle = (np.quantile(low, ROBUST_SHARE, axis=2) + np.quantile(high, 1 - ROBUST_SHARE, axis=2)) / 2
    tan_y = math.tan(math.radians(spec.fov_y_deg) / 2)
    tan_x = tan_y * spec.width / spec.height
    looking = np.stack([middle[0] * tan_x, middle[1] * tan_y, -np.ones(len(distances))], axis=1)
    forward = np.einsum("fij,fj->fi", rotations, looking)
    return look_at(-forward, np.zeros(3), up)[:, :, :3]


def _solve(measure, goal: float, size: float, frames: int, iterations: int = 14) -> np.ndarray:
    """Per frame, the distance at which a measure that shrinks with distance meets ``goal``.

    Bisection in log distance between 0.05 and 100 times the content's size: 14 halvings leave
    0.05 % of error, far below a pixel.
    """
    low, high = np.full(frames, math.log(0.05 * size)), np.full(frames, math.log(100 * size))
    for _ in range(iterations):
        middle = (low + high) / 2
        too_big = measure(np.exp(middle)) > goal
        low, high = np.where(too_big, middle, low), np.where(too_big, high, middle)
    return np.exp(high)


def smooth_along(values: np.ndarray, width: float, closed: bool) -> np.ndarray:
    """Gaussian smoothing of [F] or [F,D] values along the path; a loop wraps, an open path holds its ends."""
    radius = int(math.ceil(3 * width))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / width) ** 2)
    kernel /= kernel.sum()
    columns = values.reshape(len(values), -1)
    padded = np.pad(columns, ((radius, radius), (0, 0)), mode="wrap" if closed else "edge")
    smoothed = [np.convolve(padded[:, i], kernel, mode="valid") for i in range(columns.shape[1])]
    return np.stack(smoothed, axis=1).reshape(values.shape)


def _training_view_azimuth(frame: SceneFrame, camera_c2w: np.ndarray | None) -> float:
    """Azimuth (degrees) of the orbit camera that looks the way the training cameras looked.

    Their mean horizontal viewing direction when they mostly agree (a scan of one side), else the
    first camera's (a loop scan looks everywhere; its first frame is where the capture began).
    """
    if camera_c2w is None or len(camera_c2w) == 0:
        return 0.0
    forward = -np.asarray(camera_c2w, dtype=np.float64)[:, :, 2]
    flat = forward @ frame.axes[:2].T  # [M,2]
    lengths = np.linalg.norm(flat, axis=1)
    flat = flat[np.isfinite(lengths) & (lengths > 1e-6)]
    if len(flat) == 0:
        return 0.0
    flat = normalized(flat)
    mean = flat.mean(axis=0)
    looking = mean if np.linalg.norm(mean) >= VIEW_AGREEMENT else flat[0]
    # The orbit camera at azimuth φ looks along −(cos φ, sin φ).
    return math.degrees(math.atan2(-looking[1], -looking[0]))


def camera_path_json(path: CameraPath) -> dict:
    """The path as nerfstudio's camera-path JSON, which `ns-render camera-path` reads (cuts aside)."""
    homogeneous = np.concatenate([path.c2w, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (path.frames, 1, 1))], axis=1)
    aspect = path.width / path.height
    return {
        "camera_type": "perspective",
        "render_width": path.width,
        "render_height": path.height,
        "fps": path.fps,
        "seconds": path.seconds,
        "camera_path": [
            {"camera_to_world": matrix.reshape(-1).tolist(), "fov": path.fov_y_deg, "aspect": aspect}
            for matrix in homogeneous
        ],
        # Ignored by nerfstudio's readers: which path this is, why, and how well the capture supports it.
        "preview": {"path": path.kind, "reason": path.reason, **(path.figures or {})},
    }


def write_camera_path(path: CameraPath, out: Path) -> None:
    """Write the camera-path JSON atomically: a reader sees the old file or the whole new one."""
    out = Path(out)
    check_writable([out])
    with published_together([out]) as temps:
        temps[out].write_text(json.dumps(camera_path_json(path), indent=1))
