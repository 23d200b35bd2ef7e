"""What rendered frames show, measured on their pixels alone.

The test scenes (``captures.py``) paint what a preview must show in distinct saturated colours and
their residue (sky behind closed walls, never-observed noise) in a palette of its own, so a frame
can be judged by looking for those colours: which subject colours it shows, how large the subject is
in it, whether the frame cuts the subject off, how much of it residue covers. The same functions
judge frames fresh from the renderer and frames decoded from the encoded video. Where the frames'
cameras look, and look from, is judged here too.

A pixel matches a colour when their RGB distance (Euclidean, channels in [0, 1]) is at most
``COLOR_TOLERANCE``. Surfaces are textured (each gaussian 0.75–1.1 times its base colour, plus
noise), blend with their neighbours, and pass through BT.709 YUV 4:2:0: on renders of the test
scenes after that round trip, 90 % of the subject's unoccluded pixels lie within 0.15 of their
colour, and no other pixel comes within 0.38 of a subject colour.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import av
import numpy as np

from splat_render.sheet import yuv420_to_rgb

Color = tuple[float, float, float]

COLOR_TOLERANCE = 0.25
VISIBLE_FRACTION = 0.002  # share of a frame's pixels from which a colour counts as visible
BACKGROUND_TOLERANCE = 0.08  # tighter: dark surfaces lie within 0.25 of splatfacto's grey background
SPAN_TRIM = 0.005  # share of the subject's pixels ignored at each end of each axis when measuring span


def decode_video(path: Path | str) -> np.ndarray:
    """Every frame of a video's first video stream as [N,H,W,3] uint8 RGB, converted as players do."""
    with av.open(str(path)) as container:
        frames = [yuv420_to_rgb(frame.to_ndarray(format="yuv420p")) for frame in container.decode(video=0)]
    return np.stack(frames)


def color_fractions(
    frames: np.ndarray, colors: Mapping[str, Color], tolerance: float = COLOR_TOLERANCE
) -> np.ndarray:
    """[N,K] share of each frame's pixels that match each of the K colours (in ``colors``' order)."""
    return np.stack([_matches(frame, colors, tolerance).mean(axis=0) for frame in frames])


def coverage(
    frames: np.ndarray, colors: Mapping[str, Color], tolerance: float = COLOR_TOLERANCE
) -> np.ndarray:
    """[N] share of each frame's pixels that match any of the colours."""
    return np.array([_matches(frame, colors, tolerance).any(axis=1).mean() for frame in frames])


def color_mask(
    frame: np.ndarray, colors: Mapping[str, Color], tolerance: float = COLOR_TOLERANCE
) -> np.ndarray:
    """[H,W] bool: the pixels of one [H,W,3] frame that match any of the colours."""
    return _matches(frame, colors, tolerance).any(axis=1).reshape(frame.shape[:2])


def foreground_mask(
    frame: np.ndarray, background: Color, tolerance: float = BACKGROUND_TOLERANCE
) -> np.ndarray:
    """[H,W] bool: the pixels of one frame that are not the render's background colour: all content."""
    return ~color_mask(frame, {"background": background}, tolerance)


def visible_counts(fractions: np.ndarray, min_fraction: float = VISIBLE_FRACTION) -> np.ndarray:
    """[N] how many colours each frame shows, from ``color_fractions``' [N,K]."""
    return (fractions >= min_fraction).sum(axis=1)


def share_showing(fractions: np.ndarray, at_least: int, min_fraction: float = VISIBLE_FRACTION) -> float:
    """The share of frames that show at least ``at_least`` of the colours."""
    return float((visible_counts(fractions, min_fraction) >= at_least).mean())


def span(mask: np.ndarray, trim: float = SPAN_TRIM) -> float:
    """How much of the frame the masked pixels fill along the frame's limiting dimension, 0 when none.

    The masked pixels' extent along x as a share of the width and along y as a share of the height;
    the larger of the two is the span: the dimension that would cut the subject off first if it grew.
    Extents run between the ``trim`` and 1 − ``trim`` quantiles of the pixels' coordinates, so that a
    few stray pixels do not count; a solid shape measures about 1 % short.
    """
    rows, columns = np.nonzero(mask)
    if len(rows) == 0:
        return 0.0
    height, width = mask.shape

    def extent(coordinates: np.ndarray, size: int) -> float:
        low, high = np.quantile(coordinates, [trim, 1 - trim])
        return float(high - low + 1) / size

    return max(extent(columns, width), extent(rows, height))


def is_cut(mask: np.ndarray, min_pixels: int = 2) -> bool:
    """Whether the masked pixels reach the frame's border: at least ``min_pixels`` in its outer ring."""
    ring = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])
    return int(ring.sum()) >= min_pixels


def _matches(frame: np.ndarray, colors: Mapping[str, Color], tolerance: float) -> np.ndarray:
    """[H·W,K] bool: which pixels lie within ``tolerance`` of each colour."""
    pixels = frame.reshape(-1, 3).astype(np.float32) / 255
    palette = np.asarray(list(colors.values()), dtype=np.float32).reshape(-1, 3)
    # |p − c|² = |p|² − 2 p·c + |c|², without a [H·W,K,3] temporary.
    squared = (pixels**2).sum(axis=1, keepdims=True) - 2 * pixels @ palette.T + (palette**2).sum(axis=1)
    return squared <= tolerance**2


def looked_at(c2w: np.ndarray) -> np.ndarray:
    """(3,) the point nearest every camera's optical axis (least squares): what a path or a capture
    looks at. c2w: [M,3,4] camera-to-world, OpenGL (the camera looks down −z)."""
    forward = -c2w[:, :, 2]
    across = np.eye(3) - forward[:, :, None] * forward[:, None, :]  # [M,3,3] projections off each axis
    return np.linalg.solve(across.sum(axis=0), np.einsum("mij,mj->i", across, c2w[:, :, 3]))


def unfilmed_turn_deg(
    frames_c2w: np.ndarray, training_c2w: np.ndarray, centre: np.ndarray, horizontal: tuple[int, int]
) -> float:
    """The largest angle, about the vertical through centre, between a frame's camera and the nearest
    training camera: a path that shows a side no camera filmed turns it large. horizontal: the two
    world axes spanning the ground plane."""

    def azimuths(c2w: np.ndarray) -> np.ndarray:
        offsets = c2w[:, :, 3] - centre
        return np.arctan2(offsets[:, horizontal[1]], offsets[:, horizontal[0]])

    turns = (azimuths(frames_c2w)[:, None] - azimuths(training_c2w)[None] + np.pi) % (2 * np.pi) - np.pi
    return float(np.degrees(np.abs(turns).min(axis=1)).max())
