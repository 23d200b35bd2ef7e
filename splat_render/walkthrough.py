"""The capture path: the training trajectory, smoothed and re-timed to constant speed, for a walk-through.

Training cameras come in capture order (the frames of the recording). Their positions and viewing
directions are smoothed along that order (hand shake out), the cameras are levelled (no roll), and
the frames are placed at equal distances along the smoothed walk, as gsplat's interpolated path and
multinerf's constant-speed resampling do. A capture that hardly moved (turning on the spot) is
re-timed by its viewing direction instead.
"""

from __future__ import annotations

import numpy as np

from splat_render.framing import SceneFrame, normalized
from splat_render.orbit import CameraPath, PathSpec, look_at, smooth_along

SMOOTHING = 0.04
"""Width of the smoothing along the walk, as a share of the training cameras."""

MIN_TRAVEL = 0.05
"""A walk shorter than this share of the content's size counts as standing still."""

MAX_PITCH = 0.95  # |sin| of the steepest viewing direction kept: look_at needs a horizontal component


def capture_path(frame: SceneFrame, camera_c2w: np.ndarray, spec: PathSpec, reason: str = "") -> CameraPath:
    """Frames along the smoothed training trajectory at constant speed, looking where the cameras looked."""
    positions, forward = smoothed_walk(camera_c2w)
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    if steps.sum() < MIN_TRAVEL * 2 * frame.half_extent.max():
        steps = np.linalg.norm(np.diff(forward, axis=0), axis=1)  # turning on the spot: even turning speed
    travelled = np.concatenate([[0.0], np.cumsum(steps)])
    samples = (
        np.linspace(0.0, travelled[-1], spec.frame_count) if travelled[-1] > 0 else np.zeros(spec.frame_count)
    )
    eyes = np.stack([np.interp(samples, travelled, positions[:, i]) for i in range(3)], axis=1)
    looking = normalized(np.stack([np.interp(samples, travelled, forward[:, i]) for i in range(3)], axis=1))
    looking = limit_pitch(looking, frame.up)
    c2w = look_at(eyes, eyes + looking, frame.up)
    note = f"{reason}; follows the capture" if reason else "follows the capture"
    return CameraPath(c2w, spec.fov_y_deg, spec.width, spec.height, spec.fps, "capture", note)


def smoothed_walk(camera_c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions [M,3] and unit viewing directions [M,3] of the training cameras, hand shake smoothed out."""
    width = max(1.0, SMOOTHING * len(camera_c2w))
    positions = smooth_along(camera_c2w[:, :, 3], width, closed=False)
    forward = normalized(smooth_along(normalized(-camera_c2w[:, :, 2]), width, closed=False))
    return positions, forward


def limit_pitch(directions: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Viewing directions tilted no steeper than MAX_PITCH, so that a level camera exists for each."""
    vertical = directions @ up
    horizontal = directions - vertical[:, None] * up
    lengths = np.linalg.norm(horizontal, axis=1)
    flat = np.where(lengths[:, None] > 1e-9, horizontal / np.maximum(lengths, 1e-12)[:, None], 0.0)
    pitch = np.clip(vertical, -MAX_PITCH, MAX_PITCH)
    return normalized(flat * np.sqrt(1 - pitch**2)[:, None] + pitch[:, None] * up)
