"""Where the scene is and which way is up: a robust, up-aligned box around the trained gaussians.

Trained splats carry floaters (far, faint gaussians fitted to sky, reflections or noise) that a
min/max box would frame instead of the scene. The box here ignores non-finite and nearly
transparent gaussians and spans the 2nd–98th percentile of the rest along each of its axes, so a
handful of floaters cannot move it. Its vertical axis is the scene's up direction; its horizontal
axes are turned to hug the scene's footprint, which keeps the orbit that must fit it tight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from scipy.spatial import cKDTree

from splat_render.errors import PreviewInputError

UpSource = Literal["given", "cameras", "geometry", "default"]

MIN_OPACITY = 0.05
"""Gaussians fainter than this are ignored. Splatfacto culls below 0.1 while it refines, so what is
left under half of that is residue that barely shows in a render."""

BOX_PERCENTILES = (2.0, 98.0)
"""Per-axis range of the robust box: floaters up to 2 % of the gaussians on each side cannot move it."""

MAX_POINTS = 250_000
"""Statistics use at most this many gaussians (an even stride through them): percentiles of a
quarter million points are exact to far below a pixel, and 3 M gaussians frame in a fraction of a second."""

SAMPLE_POINTS = 10_000
"""Points used by the searches (the floor plane, the box orientation), each trying hundreds of candidates."""

LEVEL_SPREAD = 0.17
"""The cameras' right vectors pin up down when their second singular value, per √camera, exceeds
this (nerfstudio's own threshold, about 10° of spread in heading): they then span the horizontal plane."""

LEVEL_RESIDUAL = 0.12
"""...unless they leave that plane by more than this RMS (about 7°): cameras rolled on purpose."""

CAMERA_AGREEMENT = 0.8
"""Without that spread (every camera facing one way), camera up vectors are trusted when their mean
has at least this length (1 = all parallel; 0.8 is a typical deviation of about 35°)."""

PLANE_FLATNESS = 0.5
"""The smallest principal axis is a plane normal only if its variance is under this fraction of the
middle one; rounder clouds have no dominant plane."""

FLOOR_BREADTH = 1 / 3
"""Without cameras, a flat cloud whose thin axis lies far from the convention's up is a floor (a room
scanned from a pitched first camera) only when it is broad both ways: the variance along its middle
axis at least this share of the largest (a real office 0.40); a narrower slab is something standing
(a bus shelter 0.28, a guitar 0.08), and the convention's side of it is searched for the floor."""

PLANE_HYPOTHESES = 512
"""Point triples tried as the floor plane (a point and two of its neighbours)."""

PLANE_NEIGHBOURS = 24  # the neighbourhood a triple's second and third points come from

PLANE_MAX_TURN_DEG = 45.0
"""Candidate floor planes face within this angle of the smallest principal axis (not a wall)."""

PLANE_TOLERANCE = 0.02
"""Points within this fraction of the scene's largest standard deviation support a plane."""

PLANE_REFINEMENTS = 3
"""Refits of the best plane to its own inliers: the hypothesis through three points leans; its
inliers' fit, and theirs again, settle on the surface."""

PLANE_MIN_SUPPORT = 0.08
"""The best plane must hold this fraction of the points to be the floor; a volume of points (no
surface dominates) keeps the principal axis."""

MIN_RELATIVE_EXTENT = 0.01
"""A flat scene still gets a box this thick, relative to its largest half extent."""

WORLD_UP = np.array([0.0, 0.0, 1.0])  # ns-process-data's training frame is z-up for COLMAP's y-down
COLMAP_UP = np.array([0.0, -1.0, 0.0])  # 3DGS PLYs of COLMAP-based trainers keep COLMAP's y-down world

TWO_SIDED_SUPPORT = 0.5
"""A plane with another holding at least half as many points at the cloud's far side (floor and
ceiling) cannot tell up from down by where the content stands; the convention decides then."""

SIDE_MARGIN = 0.1
"""Without cameras, the content off the floor says which side is up only when at least 60 % of it
stands on one side: a desk in an office scan holds about as much above it as below (39 % against
40 % on a real one), and the convention decides then."""

FLOOR_SPAN = 0.5
"""A floor spans the content: at least this share of the cloud stands over the extent of the plane's
points (a real office's desk and floor 0.7–0.8, a statue's ground 0.96). A car's windscreen holds
as many points (0.37 of the car over it) but neither faces up nor says which side is."""


@dataclass(frozen=True)
class SceneFrame:
    """The robust box of a scene, in the training frame.

    axes rows are (horizontal_1, horizontal_2, up), a right-handed orthonormal basis; the box spans
    center ± half_extent[i] · axes[i]; up_source says where the up direction came from.
    """

    center: np.ndarray  # (3,) float64
    axes: np.ndarray  # (3,3)
    half_extent: np.ndarray  # (3,) along axes
    up_source: UpSource

    @property
    def up(self) -> np.ndarray:
        """(3,) unit vector: the box's vertical axis."""
        return self.axes[2]

    @property
    def corners(self) -> np.ndarray:
        """(8,3) the box's corners."""
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
        return self.center + (signs * self.half_extent) @ self.axes


def frame_scene(
    means: np.ndarray,  # [N,3]
    opacities: np.ndarray,  # [N] in [0,1]
    camera_c2w: np.ndarray | None = None,  # [M,3,4] OpenGL camera-to-world of the training cameras
    up: np.ndarray | None = None,  # a known up direction; None: estimate it
) -> SceneFrame:
    """Frame the scene from its gaussians; up as given, else from the training cameras when they agree."""
    points = _usable_points(np.asarray(means), np.asarray(opacities))
    sample = points[:: math.ceil(len(points) / SAMPLE_POINTS)]
    cameras = _finite_cameras(camera_c2w)
    if up is not None:
        up, up_source = normalized(np.asarray(up, dtype=np.float64)), "given"
    else:
        up, up_source = _estimate_up(sample, cameras)
    axes = _box_axes(sample, up)
    low, high = np.percentile(axes @ points.T, BOX_PERCENTILES, axis=1)  # [3,N] rows: fast percentiles
    half_extent = (high - low) / 2
    if half_extent.max() <= 0:
        raise PreviewInputError(f"no usable gaussians: all {len(points)} visible gaussians sit at one point")
    half_extent = np.maximum(half_extent, MIN_RELATIVE_EXTENT * half_extent.max())
    return SceneFrame((low + high) / 2 @ axes, axes, half_extent, up_source)


def inside_box(frame: SceneFrame, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Boolean [N]: the points inside the frame's box grown by ``margin`` of each half extent."""
    local = np.abs((points - frame.center) @ frame.axes.T)
    return np.all(local <= frame.half_extent * (1 + margin), axis=1)


def _usable_points(means: np.ndarray, opacities: np.ndarray) -> np.ndarray:
    """Finite, visible gaussian centres as float64, evenly thinned to at most MAX_POINTS."""
    if means.ndim != 2 or means.shape[1] != 3 or opacities.shape != means.shape[:1]:
        raise ValueError(f"means {means.shape} and opacities {opacities.shape} must be [N,3] and [N]")
    usable = np.isfinite(means).all(axis=1) & (opacities >= MIN_OPACITY)  # NaN compares False
    points = means[usable]
    if len(points) == 0:
        raise PreviewInputError(
            f"no usable gaussians: all {len(means)} are non-finite or fainter than opacity {MIN_OPACITY}"
        )
    stride = math.ceil(len(points) / MAX_POINTS)
    return points[::stride].astype(np.float64)


def _finite_cameras(camera_c2w: np.ndarray | None) -> np.ndarray | None:
    """The training cameras with finite poses, or None when there are none."""
    if camera_c2w is None:
        return None
    c2w = np.asarray(camera_c2w, dtype=np.float64).reshape(-1, 3, 4)
    c2w = c2w[np.isfinite(c2w).all(axis=(1, 2))]
    return c2w if len(c2w) else None


def _estimate_up(sample: np.ndarray, cameras: np.ndarray | None) -> tuple[np.ndarray, UpSource]:
    """Up from the cameras when they pin it down, else the floor's normal, else the convention.

    Cameras held level turn about the vertical, so their right vectors all lie in the horizontal
    plane whatever their pitch: up is the direction most perpendicular to them (the smallest singular
    vector, as nerfstudio's "vertical" orientation finds it), signed by the cameras' +y. The mean of
    the +y columns instead leans with the cameras' pitch (5–15° on real walks and partial arcs).
    The floor is signed towards the cameras (they look at the scene from above it); without cameras,
    towards the side the content stands on. The convention is the training frame's +z with cameras
    (a nerfstudio checkpoint) and COLMAP's −y without (a 3DGS PLY from another tool).
    """
    convention = WORLD_UP if cameras is not None else COLMAP_UP
    if cameras is not None:
        camera_up = cameras_up(cameras)
        if camera_up is not None:
            return camera_up, "cameras"
    floor = _plane_normal(sample, facing=None if cameras is not None else convention)
    if floor is None:
        return convention.copy(), "default"
    if cameras is not None:
        side = np.dot(floor.normal, np.median(cameras[:, :, 3], axis=0) - np.median(sample, axis=0))
    elif not floor.two_sided and abs(floor.lean - 0.5) >= SIDE_MARGIN:
        side = floor.lean - 0.5
    else:
        side = np.dot(floor.normal, convention)
    if side == 0:
        side = floor.lean - 0.5
    return (floor.normal if side >= 0 else -floor.normal), "geometry"


def cameras_up(camera_c2w: np.ndarray) -> np.ndarray | None:
    """(3,) the up direction the cameras were held level to, or None when they cannot tell."""
    rights = normalized(camera_c2w[:, :, 0])
    ups = normalized(camera_c2w[:, :, 1])
    mean_up = ups.mean(axis=0)
    _, singular, vh = np.linalg.svd(rights, full_matrices=False)
    if len(rights) >= 2 and singular[1] > LEVEL_SPREAD * math.sqrt(len(rights)):
        if singular[2] > LEVEL_RESIDUAL * math.sqrt(len(rights)):
            return None  # rolled on purpose (a sensor sweep, a phone turned): the right vectors tell nothing
        up = vh[2]
    elif np.linalg.norm(mean_up) >= CAMERA_AGREEMENT:
        # One heading: up is the cameras' +y freed of the shared right vector (roll is rare, pitch common).
        right = normalized(rights.mean(axis=0))
        up = mean_up - np.dot(mean_up, right) * right
    else:
        return None
    up = normalized(up)
    return up if np.dot(up, mean_up) >= 0 else -up


class Plane(NamedTuple):
    """The dominant plane of a cloud: its unit normal, its height along it, whether a parallel plane
    of similar support bounds the cloud's other side (a ceiling), and the share of the content off
    the plane that lies on the normal's side."""

    normal: np.ndarray
    height: float
    two_sided: bool
    lean: float


def _plane_normal(sample: np.ndarray, facing: np.ndarray | None = None) -> Plane | None:
    """The dominant plane (the floor of a scan); None when the cloud has no flat side.

    A flat cloud (a room, a street) is thinnest across its floor: the smallest-variance principal
    axis says roughly where the plane faces. A bulky one (an object on a bed, a plant on a table) has
    no such axis; ``facing``, the convention's up, takes its place when given, since its floor lies
    within a camera's pitch of it. So does it for a narrow slab lying across it (a shelter, a guitar:
    things standing). Objects standing on one side of the floor tilt both: the plane itself is found
    by RANSAC among the planes facing within PLANE_MAX_TURN_DEG of that direction, and refined by a
    principal-axis fit of its inliers. A cloud whose best plane holds few points or does not span the
    content has no floor: the principal axis stands, or, without one, nothing.
    """
    origin = np.median(sample, axis=0)
    offsets = sample - origin
    distances = np.linalg.norm(offsets, axis=1)
    inliers = offsets[distances <= np.percentile(distances, BOX_PERCENTILES[1])]  # without the floaters
    if len(inliers) < 3:
        return None
    variances, directions = np.linalg.eigh(np.cov(inliers.T))  # ascending eigenvalues
    if not variances[1] > 0:
        return None
    flat = variances[0] <= PLANE_FLATNESS * variances[1]
    if facing is not None and flat and variances[1] < FLOOR_BREADTH * variances[2]:
        # A narrow slab across the convention is a thing standing (a panel, a guitar), not a floor.
        flat = abs(directions[:, 0] @ facing) >= math.cos(math.radians(PLANE_MAX_TURN_DEG))
    if not flat and facing is None:
        return None
    rough = directions[:, 0] if flat else facing
    fallback = Plane(rough, float(np.median(sample @ rough)), False, 0.5) if flat else None
    triples = inliers[_local_triples(inliers, np.random.default_rng(0))]  # [K,3,3]
    normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    normals, triples = normals[lengths > 0], triples[lengths > 0]
    normals = normals / lengths[lengths > 0, None]
    facing_rough = np.abs(normals @ rough) >= math.cos(math.radians(PLANE_MAX_TURN_DEG))
    if not facing_rough.any():
        return fallback
    normals, anchors = normals[facing_rough], triples[facing_rough, 0]
    tolerance = PLANE_TOLERANCE * math.sqrt(variances[2])
    heights = normals @ inliers.T - np.sum(normals * anchors, axis=1, keepdims=True)  # [K,S]
    support = np.abs(heights) <= tolerance
    plane_points = inliers[support[np.argmax(support.sum(axis=1))]]
    if len(plane_points) < PLANE_MIN_SUPPORT * len(inliers):
        return fallback
    for _ in range(PLANE_REFINEMENTS):  # a fit of the inliers, then the inliers of that fit, and so on
        centre = plane_points.mean(axis=0)
        normal = np.linalg.eigh(np.cov(plane_points.T))[1][:, 0]
        plane_points = inliers[np.abs((inliers - centre) @ normal) <= tolerance]
        if len(plane_points) < 3:
            return None
    if _spanned_share(inliers, plane_points, normal) < FLOOR_SPAN:
        return fallback
    normal = normal if np.dot(normal, rough) >= 0 else -normal
    heights = inliers @ normal
    plane_height = np.median(plane_points @ normal)
    far_side = heights.max() if plane_height - heights.min() < heights.max() - plane_height else heights.min()
    two_sided = np.sum(np.abs(heights - far_side) <= 2 * tolerance) >= TWO_SIDED_SUPPORT * len(plane_points)
    off_plane = heights[np.abs(heights - plane_height) > 2 * tolerance] - plane_height
    lean = float(np.mean(off_plane > 0)) if len(off_plane) else 0.5
    return Plane(normal, float(plane_height + origin @ normal), bool(two_sided), lean)


def _spanned_share(points: np.ndarray, plane_points: np.ndarray, normal: np.ndarray) -> float:
    """The share of the points whose foot on the plane falls within its inliers' extent (2–98 %)."""
    basis = np.linalg.svd(np.eye(3) - np.outer(normal, normal))[0][:, :2]  # two axes in the plane
    low, high = np.percentile(plane_points @ basis, BOX_PERCENTILES, axis=0)
    feet = points @ basis
    return float(np.mean(np.all((feet >= low) & (feet <= high), axis=1)))


def _local_triples(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[PLANE_HYPOTHESES,3] indices: a random point and two of its nearest neighbours.

    Three points drawn from anywhere lie on one plane only if that plane holds a large share of the
    cloud (a floor in a third of the points: 1 triple in 27); three neighbours lie on the surface
    their first point lies on, so even a desk holding a tenth of a scan gets dozens of hypotheses.
    The refits of the best plane straighten what the short baselines leave noisy.
    """
    anchors = rng.integers(0, len(points), PLANE_HYPOTHESES)
    count = min(PLANE_NEIGHBOURS, len(points))
    _, neighbours = cKDTree(points).query(points[anchors], k=count)
    neighbours = np.asarray(neighbours).reshape(len(anchors), count)
    picks = neighbours[np.arange(len(anchors))[:, None], rng.integers(1, max(count, 2), (len(anchors), 2))]
    return np.concatenate([anchors[:, None], picks], axis=1)


def _box_axes(sample: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Rows (h1, h2, up): the horizontal pair whose robust box has the shortest horizontal diagonal.

    The orbit sees the box from every azimuth, so its radius follows that diagonal; a box turned
    45° against a square room has one √2 longer.
    """
    seed = np.eye(3)[np.argmin(np.abs(up))]  # the world axis furthest from up
    first = normalized(seed - np.dot(seed, up) * up)
    second = np.cross(up, first)
    angles = np.deg2rad(np.arange(180))  # the axis at angle a + 90° is a's pair
    directions = np.cos(angles)[:, None] * first + np.sin(angles)[:, None] * second  # [180,3]
    low, high = np.percentile(directions @ sample.T, BOX_PERCENTILES, axis=1)
    extent = high - low
    squared_diagonal = extent[:90] ** 2 + extent[90:] ** 2
    best = angles[np.argmin(squared_diagonal)]
    horizontal = math.cos(best) * first + math.sin(best) * second
    return np.stack([horizontal, np.cross(up, horizontal), up])


def normalized(vectors: np.ndarray) -> np.ndarray:
    """Vectors along the last axis scaled to unit length."""
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
