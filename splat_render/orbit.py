"""The orbit camera path: a ring of look-at cameras around the scene's robust box.

The radius is solved, not guessed: for each camera direction the box corners are projected with
the camera's own intrinsics, and the smallest radius that keeps every corner inside the image (less
the margin) in every frame is found in closed form. Cameras are OpenGL camera-to-world in the
training frame (x right, y up, z backward), which is also what nerfstudio's camera-path JSON holds.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splat_render.errors import PreviewInputError
from splat_render.framing import SceneFrame, normalized

MIN_FRAME_SIZE, MAX_FRAME_SIZE = 16, 7680
VIEW_AGREEMENT = 0.5  # mean length of the training cameras' horizontal view directions that counts as one way


@dataclass(frozen=True)
class OrbitSpec:
    """What the orbit video should look like; every field is checked on construction."""

    frames: int = 150  # 5 s at 30 fps
    fps: int = 30
    arc_deg: float = 360.0  # a closed loop; shorter arcs include both ends
    elevation_deg: float = 35.0  # above the box's horizontal plane
    fov_y_deg: float = 50.0
    width: int = 1920
    height: int = 1080
    margin: float = 0.05  # fraction of the half-image kept free around the box
    start_azimuth_deg: float | None = None  # None: look the way the training cameras looked, if known

    def __post_init__(self) -> None:
        _check_range("frames", self.frames, 90, 300)
        _check_range("fps", self.fps, 15, 60)
        _check_range("arc_deg", self.arc_deg, 30.0, 360.0)
        _check_range("elevation_deg", self.elevation_deg, 15.0, 60.0)
        _check_range("fov_y_deg", self.fov_y_deg, 20.0, 90.0)
        _check_range("width", self.width, MIN_FRAME_SIZE, MAX_FRAME_SIZE)
        _check_range("height", self.height, MIN_FRAME_SIZE, MAX_FRAME_SIZE)
        _check_range("margin", self.margin, 0.0, 0.4)
        if self.width % 2 or self.height % 2:
            raise PreviewInputError(
                f"width and height must be even for H.264 yuv420p, got {self.width}x{self.height}"
            )
        if self.start_azimuth_deg is not None and not math.isfinite(self.start_azimuth_deg):
            raise PreviewInputError(f"start_azimuth_deg must be finite, got {self.start_azimuth_deg}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    """One-line error unless value is a number of low's kind (integer or real) in [low, high]."""
    kind = numbers.Integral if isinstance(low, int) else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        raise PreviewInputError(f"{name} must be between {low} and {high}, got {value!r}")


@dataclass(frozen=True)
class CameraPath:
    """Cameras of a video: one pinhole model (principal point at the centre) for all frames."""

    c2w: np.ndarray  # [N,3,4] float64, OpenGL camera-to-world, training frame
    fov_y_deg: float
    width: int
    height: int
    fps: int

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


def orbit_path(
    frame: SceneFrame,
    spec: OrbitSpec,
    camera_c2w: np.ndarray | None = None,  # [M,3,4] training cameras, for the starting azimuth
) -> CameraPath:
    """Cameras circling the box centre at the spec's elevation, as close as the frustum allows."""
    start = spec.start_azimuth_deg
    if start is None:
        start = _training_view_azimuth(frame, camera_c2w)
    if spec.arc_deg == 360.0:
        steps = np.arange(spec.frames) / spec.frames  # a loop: the frame after the last is the first
    else:
        steps = np.arange(spec.frames) / (spec.frames - 1)
    azimuths = np.deg2rad(start + spec.arc_deg * steps)
    elevation = math.radians(spec.elevation_deg)
    horizontal = np.cos(azimuths)[:, None] * frame.axes[0] + np.sin(azimuths)[:, None] * frame.axes[1]
    directions = math.cos(elevation) * horizontal + math.sin(elevation) * frame.up  # centre → camera
    rotations = look_at(directions, np.zeros(3), frame.up)[:, :, :3]  # the same at every radius
    radius = _fitting_radius(rotations, frame, spec)
    positions = frame.center + radius * directions
    c2w = np.concatenate([rotations, positions[:, :, None]], axis=-1)
    return CameraPath(c2w, spec.fov_y_deg, spec.width, spec.height, spec.fps)


def _fitting_radius(rotations: np.ndarray, frame: SceneFrame, spec: OrbitSpec) -> float:
    """Smallest distance from the centre at which every corner fits every frame, within the margin.

    A camera at centre + r·z looking at the centre sees a corner at camera coordinates a − r·ẑ,
    a = Rᵀ(corner − centre), so at depth r − a_z. The corner is inside the shrunken image when
    |a_x| ≤ (r − a_z)·tan_x and |a_y| ≤ (r − a_z)·tan_y, which gives r directly.
    """
    tan_y = (1 - spec.margin) * math.tan(math.radians(spec.fov_y_deg) / 2)
    tan_x = tan_y * spec.width / spec.height
    local = np.einsum("nji,kj->nki", rotations, frame.corners - frame.center)  # [N,8,3]
    needed = local[..., 2] + np.maximum(np.abs(local[..., 0]) / tan_x, np.abs(local[..., 1]) / tan_y)
    return float(needed.max())


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
    """The path as nerfstudio's camera-path JSON, which `ns-render camera-path` reads."""
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
    }


def write_camera_path(path: CameraPath, out: Path) -> None:
    """Write the camera-path JSON atomically: a reader sees the old file or the whole new one."""
    out = Path(out)
    temp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        temp.write_text(json.dumps(camera_path_json(path), indent=1))
        os.replace(temp, out)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise PreviewInputError(f"cannot write camera path {out}: {exc.strerror or exc}") from exc
