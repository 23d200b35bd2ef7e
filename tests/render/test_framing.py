"""Framing: floaters must not move the box, and up must be found on tilted worlds."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from scenes import real_captures

from splat_render.errors import PreviewInputError
from splat_render.framing import frame_scene
from splat_render.orbit import PathSpec, look_at, ring_path
from splat_render.ply import read_gaussians

Z_UP = np.array([0.0, 0.0, 1.0])


def rotation(axis: str, degrees: float) -> np.ndarray:
    """Right-handed rotation matrix about a world axis."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def room(rng: np.random.Generator, count: int = 20_000) -> np.ndarray:
    """A z-up 6×4 m textured floor with three boxes on it: [count,3] surface points."""
    floor_count = count * 7 // 10
    floor = np.column_stack(
        [rng.uniform(-3, 3, floor_count), rng.uniform(-2, 2, floor_count), rng.normal(0, 0.005, floor_count)]
    )
    boxes = [((-1.5, 1.0), (0.8, 0.6, 0.9)), ((1.2, -0.8), (1.0, 0.8, 0.5)), ((0.5, 1.2), (0.4, 0.4, 1.2))]
    per_box = (count - floor_count) // len(boxes)
    box_points = [
        np.array([*centre, size[2] / 2]) + rng.uniform(-0.5, 0.5, (per_box, 3)) * size
        for centre, size in boxes
    ]
    return np.concatenate([floor, *box_points])


def ring_cameras(rng: np.random.Generator, count: int = 32) -> np.ndarray:
    """Training cameras walking a loop at eye height, looking inward and a little down, hand-held."""
    angles = np.linspace(0, 2 * math.pi, count, endpoint=False) + rng.normal(0, 0.05, count)
    eyes = np.column_stack([2.2 * np.cos(angles), 1.6 * np.sin(angles), np.full(count, 1.6)])
    targets = rng.normal(0, 0.3, (count, 3)) + [0.0, 0.0, 0.6]
    c2w = look_at(eyes, targets, Z_UP)
    rolls = [rotation("z", roll) for roll in rng.normal(0, 4, count)]
    c2w[:, :, :3] = np.einsum("nij,njk->nik", c2w[:, :, :3], rolls)
    return c2w


def tilt_world(rotation_matrix: np.ndarray, points: np.ndarray, c2w: np.ndarray | None):
    """The same scene with the whole world rotated: points and camera poses alike."""
    if c2w is None:
        return points @ rotation_matrix.T, None
    return points @ rotation_matrix.T, np.einsum("ij,njk->nik", rotation_matrix, c2w)


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


def orbit_radius(points: np.ndarray, opacities: np.ndarray, c2w: np.ndarray | None) -> float:
    frame = frame_scene(points, opacities, c2w)
    sample = points[np.isfinite(points).all(axis=1) & (opacities >= 0.05)][::10]
    path = ring_path(frame, sample.astype(np.float64), PathSpec(width=320, height=240, arc_deg=360), "orbit")
    return float(np.median(np.linalg.norm(path.c2w[:, :, 3] - frame.center, axis=1)))


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    points = room(rng).astype(np.float32)
    return points, rng.uniform(0.3, 1.0, len(points)).astype(np.float32), ring_cameras(rng)


@pytest.mark.parametrize("with_cameras", [True, False])
def test_floaters_do_not_move_the_orbit(scene, with_cameras: bool) -> None:
    points, opacities, c2w = scene
    cameras = c2w if with_cameras else None
    rng = np.random.default_rng(1)
    far = rng.normal(size=(8, 3))
    far_points = 30 + 70 * rng.uniform(size=(8, 1)) * far / np.linalg.norm(far, axis=1, keepdims=True)
    floaters = np.concatenate([far_points, [[np.nan, 0, 0], [np.inf, 1, 1], [500, 500, 500]]])
    floater_opacity = np.concatenate([rng.uniform(0.06, 0.3, 8), [0.9, 0.9, 0.01]])
    with_floaters = orbit_radius(
        np.concatenate([points, floaters.astype(np.float32)]),
        np.concatenate([opacities, floater_opacity.astype(np.float32)]),
        cameras,
    )
    without = orbit_radius(points, opacities, cameras)
    assert abs(with_floaters / without - 1) < 0.05


@pytest.mark.parametrize("tilt", [0.0, 15.0, 30.0])
@pytest.mark.parametrize("with_cameras", [True, False])
def test_up_is_found_on_a_tilted_world(scene, tilt: float, with_cameras: bool) -> None:
    points, opacities, c2w = scene
    turn = rotation("x", tilt) @ rotation("y", tilt / 2)
    tilted_points, tilted_cameras = tilt_world(turn, points, c2w if with_cameras else None)
    frame = frame_scene(tilted_points, opacities, tilted_cameras)
    assert frame.up_source == ("cameras" if with_cameras else "geometry")
    assert angle_deg(frame.up, turn @ Z_UP) <= 5.0


def test_geometry_up_is_signed_towards_the_cameras(scene) -> None:
    """Cameras that disagree about up (pointing anywhere) still say which side of the floor is up."""
    points, opacities, c2w = scene
    rng = np.random.default_rng(3)
    scrambled = c2w.copy()
    scrambled[:, :, :3] = [rotation("x", a) @ rotation("y", b) for a, b in rng.uniform(0, 360, (len(c2w), 2))]
    upside_down = rotation("x", 160)
    flipped_points, flipped_cameras = tilt_world(upside_down, points, scrambled)
    frame = frame_scene(flipped_points, opacities, flipped_cameras)
    assert frame.up_source == "geometry"
    assert angle_deg(frame.up, upside_down @ Z_UP) <= 5.0


def test_round_cloud_keeps_the_convention() -> None:
    """No cameras and no floor: −y, as 3DGS PLYs of COLMAP-based trainers; with cameras, +z."""
    blob = np.random.default_rng(0).normal(size=(5000, 3))
    frame = frame_scene(blob, np.ones(len(blob)))
    assert frame.up_source == "default"
    np.testing.assert_array_equal(frame.up, [0.0, -1.0, 0.0])
    scrambled = look_at(blob[:20] * 5, np.zeros(3), np.array([1.0, 0.0, 0.0]))
    scrambled[:, :, :3] = [rotation("x", a) for a in np.linspace(0, 360, 20, endpoint=False)]
    assert frame_scene(blob, np.ones(len(blob)), scrambled).up.tolist() == Z_UP.tolist()


def test_given_up_wins(scene) -> None:
    points, opacities, c2w = scene
    frame = frame_scene(points, opacities, c2w, up=np.array([0.0, 0.0, -2.0]))
    assert frame.up_source == "given"
    np.testing.assert_array_equal(frame.up, [0.0, 0.0, -1.0])


@pytest.mark.parametrize(
    "turn", [rotation("x", 90), rotation("x", -90), rotation("y", 90), rotation("x", 180)]
)
def test_a_ply_stands_on_its_floor(scene, turn: np.ndarray) -> None:
    """Without cameras, the floor's side that the objects stand on is up, whatever the file's axes."""
    points, opacities, _ = scene
    frame = frame_scene(points @ turn.T, opacities)
    assert frame.up_source == "geometry"
    assert angle_deg(frame.up, turn @ Z_UP) <= 5.0


def test_an_object_on_a_table_stands_on_it_in_a_pitched_colmap_world() -> None:
    """A bulky cloud (a plush on a table) has no thinnest axis; a COLMAP world started at a camera
    pitched 30° down leans −y by as much. The table, found among planes near −y, sets up."""
    rng = np.random.default_rng(5)
    radius = np.sqrt(rng.uniform(0, 1, 3000))
    angle = rng.uniform(0, 2 * math.pi, 3000)
    table = np.column_stack(
        [0.7 * radius * np.cos(angle), 0.7 * radius * np.sin(angle), rng.normal(0, 0.003, 3000)]
    )
    ball = rng.normal(size=(12000, 3))
    ball = 0.45 * ball / np.linalg.norm(ball, axis=1, keepdims=True) * rng.uniform(0.9, 1, (12000, 1))
    points = np.concatenate([table, ball + [0, 0, 0.45]])
    z_up_to_colmap = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # z up becomes −y
    turn = rotation("x", 30) @ z_up_to_colmap
    frame = frame_scene(points @ turn.T, np.ones(len(points)))
    assert angle_deg(turn @ Z_UP, [0.0, -1.0, 0.0]) == pytest.approx(30, abs=0.1)
    assert frame.up_source == "geometry"
    assert angle_deg(frame.up, turn @ Z_UP) <= 5.0


def test_floor_and_ceiling_leave_up_to_the_convention() -> None:
    """A closed room stands on neither plane more than the other: the COLMAP convention (−y) decides."""
    rng = np.random.default_rng(4)
    floor = np.column_stack([rng.uniform(-3, 3, 6000), rng.normal(0, 0.005, 6000), rng.uniform(-2, 2, 6000)])
    ceiling = floor * [1, 0, 1] + [0, -2.5, 0]  # y down: the ceiling lies at −2.5
    walls = np.column_stack([np.full(2000, 3.0), rng.uniform(-2.5, 0, 2000), rng.uniform(-2, 2, 2000)])
    room_points = np.concatenate([floor, ceiling, walls, walls * [-1, 1, 1]])
    frame = frame_scene(room_points, np.ones(len(room_points)))
    assert angle_deg(frame.up, [0.0, -1.0, 0.0]) <= 5.0


def test_box_turns_with_the_room(scene) -> None:
    """A room turned 45° about up gets a box as tight as the unturned one, not a world-aligned one."""
    points, opacities, _ = scene
    turned = points @ rotation("z", 45).T
    frame = frame_scene(turned, opacities)
    diagonal = np.linalg.norm(frame.half_extent[:2])
    assert diagonal == pytest.approx(np.linalg.norm(frame_scene(points, opacities).half_extent[:2]), rel=0.01)
    low, high = np.percentile(turned[:, :2], [2, 98], axis=0)
    assert diagonal < 0.92 * np.linalg.norm((high - low) / 2)
    local = (turned - frame.center) @ frame.axes.T
    assert (
        np.mean(np.all(np.abs(local) <= frame.half_extent + 1e-6, axis=1)) > 0.85
    )  # each axis trims at most 4 %


def test_frame_is_a_right_handed_box(scene) -> None:
    points, opacities, c2w = scene
    frame = frame_scene(points, opacities, c2w)
    np.testing.assert_allclose(frame.axes @ frame.axes.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(frame.axes) == pytest.approx(1.0)
    np.testing.assert_array_equal(frame.up, frame.axes[2])
    np.testing.assert_allclose(frame.corners.mean(axis=0), frame.center, atol=1e-9)
    local = np.abs((frame.corners - frame.center) @ frame.axes.T)
    np.testing.assert_allclose(local, np.broadcast_to(frame.half_extent, (8, 3)), atol=1e-9)
    assert frame.center.dtype == np.float64 and frame.center.shape == (3,)


@pytest.mark.parametrize(
    "means, opacities",
    [
        (np.zeros((10, 3)), np.full(10, 0.01)),
        (np.full((10, 3), np.nan), np.ones(10)),
        (np.zeros((0, 3)), np.zeros(0)),
    ],
    ids=["transparent", "non-finite", "empty"],
)
def test_no_usable_gaussians_is_a_user_error(means: np.ndarray, opacities: np.ndarray) -> None:
    with pytest.raises(PreviewInputError, match="^no usable gaussians: "):
        frame_scene(means, opacities)


def test_three_million_gaussians_frame_quickly() -> None:
    rng = np.random.default_rng(0)
    means = rng.normal(size=(3_000_000, 3)).astype(np.float32) * [3, 2, 0.5]
    opacities = rng.uniform(size=3_000_000).astype(np.float32)
    started = time.perf_counter()
    frame_scene(means, opacities)
    assert time.perf_counter() - started < 1.5


@pytest.mark.parametrize("name", ["luma_lou_seal", "polycam_bus_stop_shelter", "polycam_prius"])
def test_real_plys_from_other_tools_stand_on_their_floor_or_the_convention(name: str) -> None:
    """All their gaussians, −y up (tests/fixtures/plys/SOURCE.md). The statue's plaza is its floor;
    the shelter is a narrow slab standing across −y, not a floor; the car's windscreen holds as many
    gaussians as a floor would but spans a third of the car, so neither sets up: −y does."""
    gaussians = read_gaussians(real_captures.PLYS / f"{name}.ply")
    opacities = torch.sigmoid(gaussians.opacity_logits).numpy()
    frame = frame_scene(gaussians.means.numpy(), opacities)
    assert angle_deg(frame.up, [0.0, -1.0, 0.0]) <= 5.0
