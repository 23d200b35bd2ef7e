"""Orbit geometry: the solved radius fits the box in every frame, and nerfstudio reads the path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from splat_render.errors import PreviewInputError
from splat_render.framing import SceneFrame, frame_scene
from splat_render.orbit import CameraPath, OrbitSpec, camera_path_json, look_at, orbit_path, write_camera_path

SMALL = {"width": 320, "height": 240}


@pytest.fixture(scope="module")
def frame() -> SceneFrame:
    """A 4×2×0.8 box of points away from the origin, in a world tilted 20°."""
    rng = np.random.default_rng(0)
    points = rng.uniform([-2, -1, 0], [2, 1, 0.8], (4000, 3))
    c, s = math.cos(math.radians(20)), math.sin(math.radians(20))
    tilt = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return frame_scene(points @ tilt.T + [5.0, -3.0, 2.0], np.ones(len(points)))


def project(path: CameraPath, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates [N,P,2] and depths [N,P] of world points in every frame (OpenGL cameras)."""
    rotations, positions = path.c2w[:, :, :3], path.c2w[:, :, 3]
    local = np.einsum("nji,npj->npi", rotations, points[None] - positions[:, None])
    depth = -local[..., 2]
    k = path.intrinsics()
    u = k[0, 2] + k[0, 0] * local[..., 0] / depth
    v = k[1, 2] - k[1, 1] * local[..., 1] / depth  # image rows grow downwards
    return np.stack([u, v], axis=-1), depth


def margin_usage(path: CameraPath, frame: SceneFrame, margin: float) -> np.ndarray:
    """Per frame and corner: distance from the image centre over the allowed distance (1 = on the edge)."""
    pixels, _ = project(path, frame.corners)
    half = np.array([path.width / 2, path.height / 2])
    return (np.abs(pixels - half) / ((1 - margin) * half)).max(axis=-1)


def azimuths_deg(path: CameraPath, frame: SceneFrame) -> np.ndarray:
    offsets = path.c2w[:, :, 3] - frame.center
    return np.degrees(np.arctan2(offsets @ frame.axes[1], offsets @ frame.axes[0]))


@pytest.mark.parametrize(
    "spec",
    [
        OrbitSpec(**SMALL),
        OrbitSpec(width=240, height=320, margin=0.0, elevation_deg=45, fov_y_deg=30),
        OrbitSpec(width=640, height=200, margin=0.2, elevation_deg=15, fov_y_deg=80, arc_deg=270),
    ],
    ids=["default", "portrait", "wide"],
)
def test_every_corner_fits_every_frame_tightly(frame: SceneFrame, spec: OrbitSpec) -> None:
    path = orbit_path(frame, spec)
    _, depths = project(path, frame.corners)
    assert (depths > 0).all()
    usage = margin_usage(path, frame, spec.margin)
    assert usage.max() <= 1 + 1e-9
    assert usage.max() >= 1 - 1e-9  # the radius is the smallest that fits: some corner touches the margin


def test_radius_follows_the_frustum(frame: SceneFrame) -> None:
    def radius(**changes: float) -> float:
        path = orbit_path(frame, OrbitSpec(**{**SMALL, **changes}))
        return float(np.linalg.norm(path.c2w[0, :, 3] - frame.center))

    assert radius(margin=0.2) > radius(margin=0.05)
    assert radius(fov_y_deg=30) > radius(fov_y_deg=60)
    assert radius(width=240, height=320) > radius()  # a portrait image needs distance for the width


def test_elevation_and_look_at(frame: SceneFrame) -> None:
    spec = OrbitSpec(elevation_deg=40, **SMALL)
    path = orbit_path(frame, spec)
    offsets = path.c2w[:, :, 3] - frame.center
    distances = np.linalg.norm(offsets, axis=1)
    np.testing.assert_allclose(np.degrees(np.arcsin(offsets @ frame.up / distances)), 40, atol=0.5)
    np.testing.assert_allclose(distances, distances[0])
    forward = -path.c2w[:, :, 2]
    miss = np.linalg.norm(np.cross(forward, -offsets), axis=1)  # centre's distance from the optical axis
    np.testing.assert_allclose(miss, 0, atol=1e-9 * distances[0])
    assert (np.einsum("ni,ni->n", forward, -offsets) > 0).all()
    pixels, _ = project(path, frame.center[None])
    np.testing.assert_allclose(pixels[:, 0] - [spec.width / 2, spec.height / 2], 0, atol=1e-6)


def test_bases_are_orthonormal_right_handed_and_level(frame: SceneFrame) -> None:
    rotations = orbit_path(frame, OrbitSpec(**SMALL)).c2w[:, :, :3]
    np.testing.assert_allclose(
        np.einsum("nji,njk->nik", rotations, rotations),
        np.broadcast_to(np.eye(3), rotations.shape),
        atol=1e-12,
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0)
    np.testing.assert_allclose(
        rotations[:, :, 0] @ frame.up, 0, atol=1e-12
    )  # no roll: right stays horizontal
    assert (rotations[:, :, 1] @ frame.up > 0).all()


def test_full_loop_closes_without_repeating_a_frame(frame: SceneFrame) -> None:
    path = orbit_path(frame, OrbitSpec(frames=120, **SMALL))
    steps = np.diff(np.unwrap(np.radians(azimuths_deg(path, frame)), period=2 * math.pi))
    np.testing.assert_allclose(np.degrees(steps), 3.0)
    wrap = (azimuths_deg(path, frame)[0] - azimuths_deg(path, frame)[-1]) % 360
    assert wrap == pytest.approx(3.0)  # the frame after the last would be the first
    positions = path.c2w[:, :, 3]
    gaps = np.linalg.norm(positions[:, None] - positions[None], axis=-1) + np.eye(len(positions))
    assert gaps.min() > 1e-3


def test_partial_arc_includes_both_ends(frame: SceneFrame) -> None:
    path = orbit_path(frame, OrbitSpec(frames=91, arc_deg=270, start_azimuth_deg=10, **SMALL))
    swept = np.degrees(np.unwrap(np.radians(azimuths_deg(path, frame))))
    assert swept[0] == pytest.approx(10)
    assert swept[-1] - swept[0] == pytest.approx(270)
    np.testing.assert_allclose(np.diff(swept), 3.0)


def horizontal_view(c2w: np.ndarray, frame: SceneFrame) -> np.ndarray:
    forward = -c2w[:, 2]
    flat = forward - np.dot(forward, frame.up) * frame.up
    return flat / np.linalg.norm(flat)


def test_start_faces_the_way_a_one_sided_scan_looked(frame: SceneFrame) -> None:
    """All training cameras stand on one side, looking across the scene."""
    looking = frame.axes[1]
    eyes = frame.center - 3 * looking + np.linspace(-1, 1, 9)[:, None] * frame.axes[0] + frame.up
    path = orbit_path(frame, OrbitSpec(**SMALL), look_at(eyes, frame.center, frame.up))
    assert np.dot(horizontal_view(path.c2w[0], frame), looking) > math.cos(math.radians(1))


def test_loop_scan_starts_where_the_capture_began(frame: SceneFrame) -> None:
    """Training cameras all around look every way; the first one sets the start."""
    angles = np.radians(np.arange(40, 400, 30))
    eyes = frame.center + 3 * (
        np.cos(angles)[:, None] * frame.axes[0] + np.sin(angles)[:, None] * frame.axes[1]
    )
    training = look_at(eyes + frame.up, frame.center, frame.up)
    path = orbit_path(frame, OrbitSpec(**SMALL), training)
    first_training_view = horizontal_view(training[0], frame)
    assert np.dot(horizontal_view(path.c2w[0], frame), first_training_view) > math.cos(math.radians(1))


def test_defaults_make_a_five_to_ten_second_video_at_30_fps(frame: SceneFrame) -> None:
    path = orbit_path(frame, OrbitSpec())
    assert path.fps == 30 and 5 <= path.seconds <= 10
    assert (path.width, path.height) == (1920, 1080)
    assert path.c2w.shape == (150, 3, 4) and path.c2w.dtype == np.float64


def test_nerfstudio_reads_the_camera_path(frame: SceneFrame, tmp_path) -> None:
    from nerfstudio.cameras.camera_paths import get_path_from_json

    path = orbit_path(frame, OrbitSpec(frames=90, arc_deg=200, **SMALL))
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


def test_unwritable_camera_path_is_a_user_error(frame: SceneFrame, tmp_path) -> None:
    path = orbit_path(frame, OrbitSpec(**SMALL))
    with pytest.raises(PreviewInputError, match="cannot write camera path"):
        write_camera_path(path, tmp_path / "missing" / "camera_path.json")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"width": 1279, "height": 720}, "width and height must be even for H.264 yuv420p, got 1279x720"),
        ({"frames": 30}, "frames must be between 90 and 300, got 30"),
        ({"frames": 150.0}, "frames must be between 90 and 300, got 150.0"),
        ({"elevation_deg": 80}, "elevation_deg must be between 15.0 and 60.0, got 80"),
        ({"arc_deg": 400}, "arc_deg must be between 30.0 and 360.0, got 400"),
        ({"margin": -0.1}, "margin must be between 0.0 and 0.4, got -0.1"),
        ({"fov_y_deg": float("nan")}, "fov_y_deg must be between 20.0 and 90.0, got nan"),
        ({"start_azimuth_deg": float("inf")}, "start_azimuth_deg must be finite, got inf"),
    ],
)
def test_spec_errors_are_one_line(changes: dict, message: str) -> None:
    with pytest.raises(PreviewInputError) as error:
        OrbitSpec(**changes)
    assert str(error.value) == message
