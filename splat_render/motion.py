"""How a camera path moves: turning rate and roll, the figures that say whether it is calm to watch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class Motion:
    max_turn_deg_s: float  # the fastest turn between two frames (yaw, pitch and roll together)
    typical_turn_deg_s: float  # the median turn while turning (frames that turn at all)
    max_roll_deg: float  # the largest tilt of a frame's horizon against up


def turn_rates(c2w: np.ndarray, fps: float) -> np.ndarray:
    """[F-1] degrees per second the camera turns between consecutive frames (OpenGL camera-to-world)."""
    rotations = Rotation.from_matrix(np.asarray(c2w, dtype=np.float64)[:, :, :3])
    steps = (rotations[1:] * rotations[:-1].inv()).magnitude()
    return np.degrees(steps) * fps


def roll_deg(c2w: np.ndarray, up: np.ndarray) -> np.ndarray:
    """[F] how far each frame's horizon tilts: the angle of its right vector out of the level plane."""
    right = np.asarray(c2w, dtype=np.float64)[:, :, 0]
    right = right / np.linalg.norm(right, axis=1, keepdims=True)
    return np.degrees(np.arcsin(np.clip(np.abs(right @ up), 0.0, 1.0)))


def motion(c2w: np.ndarray, fps: float, up: np.ndarray) -> Motion:
    rates = turn_rates(c2w, fps) if len(c2w) > 1 else np.zeros(1)
    turning = rates[rates > 1.0]
    typical = float(np.median(turning)) if len(turning) else 0.0
    return Motion(float(rates.max()), typical, float(roll_deg(c2w, up).max()))
