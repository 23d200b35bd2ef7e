"""Ring paths: the content fills the frames without being cut, cuts hide only what they should, the
arc follows the capture, and nerfstudio reads the path."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scenes import judge
from scipy.spatial.transform import Rotation

from splat_render.errors import PreviewInputError
from splat_render.framing import SceneFrame, frame_scene
from splat_render.orbit import CameraPath, PathSpec, camera_path_json, look_at, ring_path, write_camera_path

SMALL = {"width": 320, "height": 240}


TILT = Rotation.from_euler("x", 20, degrees=True).as_matrix()  # the box's world: z up, turned 20° about x


@pytest.fixture(scope="module")
def box_points() -> np.ndarray:
    """A 4×2×0.8 box of points away from the origin, in a world tilted 20°."""
    rng = np.random.default_rng(0)
    points = rng.uniform([-2, -1, 0], [2, 1, 0.8], (4000, 3))
    return points @ TILT.T + [5.0, -3.0, 2.0]


@pytest.fixture(scope="module")
def frame(box_points) -> SceneFrame:
    return frame_scene(box_points, np.ones(len(box_points)), up=TILT @ [0.0, 0.0, 1.0])


def orbit(frame: SceneFrame, points: np.ndarray, cameras: np.ndarray | None = None, **spec) -> CameraPath:
    return ring_path(frame, points, PathSpec(**{**SMALL, **spec}), "orbit", cameras)


def project(path: CameraPath, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates [N,P,2] and depths [N,P] of world points in every frame (OpenGL cameras)."""
    rotations, positions = path.c2w[:, :, :3], path.c2w[:, :, 3]
    local = np.einsum("nji,npj->npi", rotations, points[None] - positions[:, None])
    depth = -local[..., 2]
    k = path.intrinsics()
    u = k[0, 2] + k[0, 0] * local[..., 0] / depth
    v = k[1, 2] - k[1, 1] * local[..., 1] / depth  # image rows grow downwards
    return np.stack([u, v], axis=-1), depth


def spans_and_reach(path: CameraPath, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the 1–99 % extent of the points over the frame's limiting dimension, and the
    furthest of those quantiles from the centre as a share of the half frame."""
    pixels, depths = project(path, points)
    assert (depths > 0).all()
    half = np.array([path.width / 2, path.height / 2])
    normalised = (pixels - half) / half  # [-1, 1] inside the frame
    low, high = np.quantile(normalised, [0.01, 0.99], axis=1)  # [F,2]
    return ((high - low) / 2).max(axis=1), np.maximum(np.abs(low), np.abs(high)).max(axis=1)


def azimuths_deg(path: CameraPath, frame: SceneFrame, centre: np.ndarray | None = None) -> np.ndarray:
    offsets = path.c2w[:, :, 3] - (frame.center if centre is None else centre)
    return np.degrees(np.arctan2(offsets @ frame.axes[1], offsets @ frame.axes[0]))


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"width": 240, "height": 320, "elevation_deg": 45, "fov_y_deg": 30},
        {"width": 640, "height": 200, "fill": 0.7, "elevation_deg": 15, "fov_y_deg": 80, "arc_deg": 270},
    ],
    ids=["default", "portrait", "wide"],
)
def test_content_fills_every_frame_without_being_cut(frame: SceneFrame, box_points, spec: dict) -> None:
    path = orbit(frame, box_points, **spec)
    spans, reach = spans_and_reach(path, box_points)
    assert reach.max() <= 0.95  # every robust point inside the frame, with room for the splats' size
    if spec.get("fov_y_deg", 50) <= 60:
        assert 0.7 <= np.median(spans) <= 0.9
        assert abs(np.median(spans) - spec.get("fill", 0.8)) <= 0.05
    else:  # a very wide lens pushes the near side of the content off-centre: the reach decides
        assert np.median(spans) >= 0.55


def test_distance_follows_the_frustum(frame: SceneFrame, box_points) -> None:
    def distance(**changes) -> float:
        path = orbit(frame, box_points, **changes)
        return float(np.median(np.linalg.norm(path.c2w[:, :, 3] - judge.looked_at(path.c2w), axis=1)))

    assert distance(fill=0.6) > distance(fill=0.85)
    assert distance(fov_y_deg=30) > distance(fov_y_deg=60)
    assert distance(width=240, height=320) > distance()  # a portrait image needs distance for the width


def test_a_long_room_gets_an_ellipse(frame: SceneFrame, box_points) -> None:
    """Seen along its long side the box needs more distance than end on; the path follows smoothly."""
    path = orbit(frame, box_points, frames=120)
    distances = np.linalg.norm(path.c2w[:, :, 3] - frame.center, axis=1)
    assert distances.max() / distances.min() > 1.05
    steps = np.abs(np.diff(np.concatenate([distances, distances[:1]]))) / distances.mean()
    assert steps.max() < 0.03  # no jumps, also where the loop closes


def test_elevation_and_the_content_centred(frame: SceneFrame, box_points) -> None:
    path = orbit(frame, box_points, elevation_deg=40)
    offsets = path.c2w[:, :, 3] - frame.center
    elevations = np.degrees(np.arcsin(offsets @ frame.up / np.linalg.norm(offsets, axis=1)))
    np.testing.assert_allclose(elevations, 40, atol=1.5)  # above the content's middle at the elevation
    pixels, depths = project(path, box_points)
    assert (depths > 0).all()
    half = np.array([path.width / 2, path.height / 2])
    low, high = np.quantile((pixels - half) / half, [0.01, 0.99], axis=1)
    np.testing.assert_allclose((low + high) / 2, 0, atol=0.02)  # the content's image box is centred


def test_bases_are_orthonormal_right_handed_and_level(frame: SceneFrame, box_points) -> None:
    rotations = orbit(frame, box_points).c2w[:, :, :3]
    np.testing.assert_allclose(
        np.einsum("nji,njk->nik", rotations, rotations),
        np.broadcast_to(np.eye(3), rotations.shape),
        atol=1e-12,
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0)
    np.testing.assert_allclose(rotations[:, :, 0] @ frame.up, 0, atol=1e-12)  # no roll
    assert (rotations[:, :, 1] @ frame.up > 0).all()


def test_full_loop_closes_without_repeating_a_frame(frame: SceneFrame, box_points) -> None:
    path = orbit(frame, box_points, frames=120)
    assert path.reason == "loop at 35°"
    azimuths = azimuths_deg(path, frame)
    steps = np.diff(np.unwrap(np.radians(azimuths), period=2 * math.pi))
    np.testing.assert_allclose(np.degrees(steps), 3.0, atol=0.1)
    assert (azimuths[0] - azimuths[-1]) % 360 == pytest.approx(
        3.0, abs=0.1
    )  # the one after the last is the first
    positions = path.c2w[:, :, 3]
    gaps = np.linalg.norm(positions[:, None] - positions[None], axis=-1) + np.eye(len(positions))
    assert gaps.min() > 1e-3


def test_partial_arc_includes_both_ends(frame: SceneFrame, box_points) -> None:
    path = orbit(frame, box_points, frames=91, arc_deg=270, start_azimuth_deg=10)
    swept = np.degrees(np.unwrap(np.radians(azimuths_deg(path, frame))))
    assert swept[0] == pytest.approx(10, abs=0.5)
    assert swept[-1] - swept[0] == pytest.approx(270, abs=0.5)
    np.testing.assert_allclose(np.diff(swept), 3.0, atol=0.1)


def ring_of_cameras(frame: SceneFrame, degrees: np.ndarray, radius: float = 6.0) -> np.ndarray:
    angles = np.radians(degrees)
    eyes = frame.center + radius * (
        np.cos(angles)[:, None] * frame.axes[0] + np.sin(angles)[:, None] * frame.axes[1]
    )
    return look_at(eyes + frame.up, frame.center, frame.up)


def test_half_circle_capture_is_swept_once(frame: SceneFrame, box_points) -> None:
    """Cameras on half a circle: the path stays on their side (plus a margin), end to end, once
    (a return would double the turning rate)."""
    path = orbit(frame, box_points, ring_of_cameras(frame, np.linspace(0, 180, 25)))
    assert "sweeps" in path.reason
    azimuths = np.degrees(np.unwrap(np.radians(azimuths_deg(path, frame))))
    assert azimuths.min() >= -15 and azimuths.max() <= 195
    assert azimuths.max() - azimuths.min() >= 190
    assert abs(abs(azimuths[-1] - azimuths[0]) - (azimuths.max() - azimuths.min())) < 1  # ends at the ends
    never = (azimuths % 360 > 210) & (azimuths % 360 < 330)
    assert not never.any()  # no frame looks at the side nothing observed


def test_surrounding_capture_gets_a_loop(frame: SceneFrame, box_points) -> None:
    path = orbit(frame, box_points, ring_of_cameras(frame, np.arange(0, 360, 40)))
    assert path.reason.startswith("loop at ")


def horizontal_view(c2w: np.ndarray, frame: SceneFrame) -> np.ndarray:
    forward = -c2w[:, 2]
    flat = forward - np.dot(forward, frame.up) * frame.up
    return flat / np.linalg.norm(flat)


def test_a_loop_of_a_one_sided_scan_starts_the_way_it_looked(frame: SceneFrame, box_points) -> None:
    """All training cameras stand on one side, looking across the scene; a full loop was asked for."""
    looking = frame.axes[1]
    eyes = frame.center - 3 * looking + np.linspace(-1, 1, 9)[:, None] * frame.axes[0] + frame.up
    path = orbit(frame, box_points, look_at(eyes, frame.center, frame.up), arc_deg=360)
    assert np.dot(horizontal_view(path.c2w[0], frame), looking) > math.cos(math.radians(5))


def test_loop_scan_starts_where_the_capture_began(frame: SceneFrame, box_points) -> None:
    """Training cameras all around look every way; the first one sets the start."""
    training = ring_of_cameras(frame, np.arange(40, 400, 30), radius=3.0)
    path = orbit(frame, box_points, training)
    first_training_view = horizontal_view(training[0], frame)
    assert np.dot(horizontal_view(path.c2w[0], frame), first_training_view) > math.cos(math.radians(5))


def hidden(path: CameraPath, points: np.ndarray) -> np.ndarray:
    """[F,P]: which points each frame's cuts hide (a cut hides what lies beyond all of its planes)."""
    beyond = np.einsum("pj,fkqj->fpkq", points, path.cuts[..., :3]) > path.cuts[:, None, ..., 3]
    return beyond.all(axis=3).any(axis=2)


def test_orbit_cut_hides_what_stands_between_camera_and_content(frame: SceneFrame, box_points) -> None:
    path = orbit(frame, box_points)
    assert hidden(path, box_points).mean() < 0.01  # the content stays (but for stray points)
    eyes, target = path.c2w[:, :, 3], judge.looked_at(path.c2w)
    occluders = target + 0.7 * (eyes - target)  # on the way from each camera to the content
    assert np.diagonal(hidden(path, occluders)).all()


def room_points(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A closed 6×4×2.5 m room (floor, ceiling, four walls) with a table in the middle, z up."""
    n = 3000
    parts = {
        "floor": np.column_stack([rng.uniform(-3, 3, n), rng.uniform(-2, 2, n), np.zeros(n)]),
        "ceiling": np.column_stack([rng.uniform(-3, 3, n), rng.uniform(-2, 2, n), np.full(n, 2.5)]),
        "wall_x+": np.column_stack([np.full(n, 3.0), rng.uniform(-2, 2, n), rng.uniform(0, 2.5, n)]),
        "wall_x-": np.column_stack([np.full(n, -3.0), rng.uniform(-2, 2, n), rng.uniform(0, 2.5, n)]),
        "wall_y+": np.column_stack([rng.uniform(-3, 3, n), np.full(n, 2.0), rng.uniform(0, 2.5, n)]),
        "wall_y-": np.column_stack([rng.uniform(-3, 3, n), np.full(n, -2.0), rng.uniform(0, 2.5, n)]),
        "table": rng.uniform([-0.5, -0.4, 0.0], [0.5, 0.4, 0.8], (n // 3, 3)),
    }
    return np.concatenate(list(parts.values())), parts


def test_dollhouse_drops_ceiling_and_near_walls_keeps_floor_and_far_walls() -> None:
    points, parts = room_points(np.random.default_rng(2))
    walk = look_at(
        np.array([[1.5 * math.cos(a), 1.0 * math.sin(a), 1.6] for a in np.linspace(0, 6, 20)]),
        np.array([0.0, 0.0, 1.4]),
        np.array([0.0, 0.0, 1.0]),
    )
    frame = frame_scene(points, np.ones(len(points)), walk)
    path = ring_path(frame, points, PathSpec(**SMALL), "dollhouse", walk)
    assert path.kind == "dollhouse" and path.reason == "loop at 45°"
    assert hidden(path, parts["ceiling"]).all()
    assert not hidden(path, parts["floor"]).any() and not hidden(path, parts["table"]).any()
    for frame_index in range(0, path.frames, 5):
        eye = path.c2w[frame_index, :, 3]
        for name, most_blocked in (("floor", 0.05), ("table", 0.05)):
            blocked = blocked_by_walls(path, frame_index, eye, parts[name])
            assert blocked.mean() < most_blocked, (frame_index, name, blocked.mean())  # the interior shows
        far_wall = min(WALLS, key=lambda n: np.dot(parts[n].mean(axis=0)[:2], eye[:2]))
        below_ceiling_cut = parts[far_wall][parts[far_wall][:, 2] < 1.9]
        assert hidden(path, below_ceiling_cut)[frame_index].mean() < 0.1  # the far wall stays, but a corner


WALLS = {"wall_x+": (0, 3.0), "wall_x-": (0, -3.0), "wall_y+": (1, 2.0), "wall_y-": (1, -2.0)}


def blocked_by_walls(path: CameraPath, frame_index: int, eye: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[S]: which points' line of sight from the eye crosses a wall of ``room_points`` that is drawn."""
    blocked = np.zeros(len(points), dtype=bool)
    one_frame = replace(path, cuts=path.cuts[frame_index : frame_index + 1])
    for axis, position in WALLS.values():
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (position - eye[axis]) / (points[:, axis] - eye[axis])
        crossing = eye + t[:, None] * (points - eye)
        on_wall = (t > 0) & (t < 0.999) & (np.abs(crossing[:, 0]) <= 3) & (np.abs(crossing[:, 1]) <= 2)
        on_wall &= (crossing[:, 2] >= 0) & (crossing[:, 2] <= 2.5)
        blocked |= on_wall & ~hidden(one_frame, np.nan_to_num(crossing))[0]
    return blocked


def test_dollhouse_looks_down_at_45_degrees() -> None:
    points, _ = room_points(np.random.default_rng(2))
    frame = frame_scene(points, np.ones(len(points)), up=np.array([0.0, 0.0, 1.0]))
    path = ring_path(frame, points, PathSpec(**SMALL), "dollhouse")
    offsets = path.c2w[:, :, 3] - frame.center
    elevation = np.degrees(np.arcsin(offsets @ frame.up / np.linalg.norm(offsets, axis=1)))
    np.testing.assert_allclose(elevation, 45.0, atol=3.0)


def test_defaults_make_a_five_to_ten_second_video_at_30_fps(frame: SceneFrame, box_points) -> None:
    path = ring_path(frame, box_points, PathSpec(), "orbit")
    assert path.fps == 30 and 5 <= path.seconds <= 10
    assert (path.width, path.height) == (1920, 1080)
    assert path.c2w.shape == (150, 3, 4) and path.c2w.dtype == np.float64


def test_nerfstudio_reads_the_camera_path(frame: SceneFrame, box_points, tmp_path) -> None:
    from nerfstudio.cameras.camera_paths import get_path_from_json

    path = orbit(frame, box_points, frames=90, arc_deg=200)
    out = tmp_path / "camera_path.json"
    write_camera_path(path, out)
    assert [p.name for p in tmp_path.iterdir()] == ["camera_path.json"]
    loaded = json.loads(out.read_text())
    assert loaded == json.loads(json.dumps(camera_path_json(path)))
    assert loaded["seconds"] == pytest.approx(3.0) and loaded["fps"] == 30
    cameras = get_path_from_json(loaded)
    np.testing.assert_allclose(cameras.camera_to_worlds.numpy(), path.c2w, atol=1e-5)
    np.testing.assert_allclose(cameras.get_intrinsics_matrices()[0].numpy(), path.intrinsics(), rtol=1e-6)
    assert int(cameras.width[0]) == 320 and int(cameras.height[0]) == 240
    assert cameras.camera_to_worlds.dtype == torch.float32


def test_unwritable_camera_path_is_a_user_error(frame: SceneFrame, box_points, tmp_path) -> None:
    path = orbit(frame, box_points)
    with pytest.raises(PreviewInputError, match="output folder does not exist"):
        write_camera_path(path, tmp_path / "missing" / "camera_path.json")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"width": 1279, "height": 720}, "width and height must be even for H.264 yuv420p, got 1279x720"),
        ({"frames": 30}, "frames must be between 90 and 300, got 30"),
        ({"frames": 150.0}, "frames must be between 90 and 300, got 150.0"),
        ({"elevation_deg": 80}, "elevation_deg must be between 15.0 and 60.0, got 80"),
        ({"arc_deg": 400}, "arc_deg must be between 30.0 and 360.0, got 400"),
        ({"fill": 1.2}, "fill must be between 0.3 and 0.95, got 1.2"),
        ({"kind": "spiral"}, "path must be one of auto, orbit, dollhouse, flythrough, capture, got 'spiral'"),
        ({"fov_y_deg": float("nan")}, "fov_y_deg must be between 20.0 and 90.0, got nan"),
        ({"start_azimuth_deg": float("inf")}, "start_azimuth_deg must be finite, got inf"),
    ],
)
def test_spec_errors_are_one_line(changes: dict, message: str) -> None:
    with pytest.raises(PreviewInputError) as error:
        PathSpec(**changes)
    assert str(error.value) == message
