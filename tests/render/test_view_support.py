"""View support, the flythrough and ``auto``'s choice, on real captures thinned into fixtures and on
scenes built like them; up from the cameras' right vectors."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scenes import real_captures
from scipy.spatial.transform import Rotation, Slerp

from splat_render import flythrough
from splat_render.analysis import analyze_scene
from splat_render.framing import cameras_up, frame_scene
from splat_render.motion import motion
from splat_render.orbit import PathSpec, look_at
from splat_render.paths import capture_support, choose_path, plan_path
from splat_render.raster import RenderSettings, render_batch
from splat_render.support import Views, frame_support, view_support
from splat_render.views import pinhole_cameras, viewmats_from_c2w

SPEC = PathSpec(width=160, height=90, frames=90)
REAL = ("snowmiku_arc", "tum_fr1_rpy", "tum_fr3_cabinet_half")
# TUM's motion capture is z-up; ns-process-data turns COLMAP's z into the training frame's y.
SURVEYED_UP = {name: np.array([0.0, 1.0, 0.0]) for name in ("tum_fr1_rpy", "tum_fr3_cabinet_half")}


@pytest.fixture(scope="module", params=REAL)
def real(request):
    capture = real_captures.load(request.param)
    analysis = analyze_scene(capture.gaussians, capture.cameras(), observation=capture.observation)
    return capture, analysis, capture_support(analysis, capture.gaussians)


# --- the support measure --------------------------------------------------------------------


def wall_scene(seed: int = 0) -> np.ndarray:
    """Points on a 4×4 wall in the plane x = 0 and on a box behind it (x = -1..-2)."""
    rng = np.random.default_rng(seed)
    wall = np.stack([np.zeros(3000), rng.uniform(-2, 2, 3000), rng.uniform(-2, 2, 3000)], axis=1)
    behind = np.stack(
        [rng.uniform(-2, -1, 500), rng.uniform(-0.5, 0.5, 500), rng.uniform(-0.5, 0.5, 500)], axis=1
    )
    return np.concatenate([wall, behind])


def views_at(eyes: np.ndarray, target: np.ndarray, tan: float = 0.5) -> Views:
    c2w = look_at(np.asarray(eyes, dtype=np.float64), target, np.array([0.0, 0.0, 1.0]))
    return Views(c2w, np.full((len(c2w), 2), tan))


def test_a_training_view_is_supported_and_the_far_side_is_not() -> None:
    points = wall_scene()
    training = views_at([[3.0, 0.0, 0.0], [3.0, 0.5, 0.3]], np.zeros(3), tan=1.0)  # the whole wall
    support = view_support(points, training, torch.device("cpu"))
    assert not support.seen[:, 3000:].any()  # the box behind the wall is hidden from the front
    candidates = views_at(
        [[3.0, 0.1, 0.1], [-4.0, 0.0, 0.0], [3.0 * 3, 0.0, 0.0], [4.5, 0.0, 0.0]], np.zeros(3)
    )
    shares = frame_support(support, candidates).shares()
    assert shares[0] >= 0.95  # beside a training view
    assert shares[1] <= 0.05  # from behind: the wall's back and the box nobody saw
    assert shares[2] <= 0.3  # three times as far as any training view
    assert shares[3] >= 0.95  # one and a half times as far: still within 2×


def test_a_frame_showing_nothing_is_not_supported() -> None:
    points = wall_scene()
    support = view_support(points, views_at([[3.0, 0.0, 0.0]], np.zeros(3)), torch.device("cpu"))
    away = views_at([[3.0, 0.0, 0.0]], np.array([6.0, 0.0, 0.0]))  # looking away from the wall
    frames = frame_support(support, away)
    assert frames.shares()[0] == 0.0 and frames.supported_frames() == 0.0


# --- up -------------------------------------------------------------------------------------


def pitched_arc(arc_deg: float, pitch_deg: float, count: int = 24, seed: int = 0) -> np.ndarray:
    """Cameras on an arc around the origin of a z-up world, looking at it, pitched down, with hand yaw."""
    rng = np.random.default_rng(seed)
    azimuths = np.radians(np.linspace(0, arc_deg, count, endpoint=arc_deg < 360))
    eyes = np.stack([3 * np.cos(azimuths), 3 * np.sin(azimuths), np.full(count, 1.5)], axis=1)
    c2w = look_at(eyes, np.zeros(3), np.array([0.0, 0.0, 1.0]))
    for i in range(count):  # pitch about the camera's own right vector, a little yaw about world up
        pitch = Rotation.from_rotvec(np.radians(pitch_deg + rng.normal(0, 5)) * c2w[i, :, 0])
        yaw = Rotation.from_rotvec(np.radians(rng.normal(0, 10)) * np.array([0.0, 0.0, 1.0]))
        c2w[i, :, :3] = (yaw * pitch).as_matrix() @ c2w[i, :, :3]
    return c2w


@pytest.mark.parametrize("arc_deg", [360, 180, 90])
@pytest.mark.parametrize("pitch_deg", [0, -25])
def test_up_from_the_right_vectors_holds_on_partial_arcs_and_pitched_cameras(arc_deg, pitch_deg) -> None:
    up = cameras_up(pitched_arc(arc_deg, pitch_deg))
    assert math.degrees(math.acos(np.clip(up @ [0.0, 0.0, 1.0], -1, 1))) <= 2.0


def test_cameras_rolled_on_purpose_leave_up_to_the_geometry() -> None:
    c2w = pitched_arc(180, 0)
    angles = np.random.default_rng(1).normal(0, 30, len(c2w))  # a sensor turned about its axis at will
    rolls = Rotation.from_rotvec(np.radians(angles)[:, None] * -c2w[:, :, 2])
    c2w[:, :, :3] = rolls.as_matrix() @ c2w[:, :, :3]
    assert cameras_up(c2w) is None


def test_a_real_capture_stands_upright(real) -> None:
    capture, analysis, _ = real
    truth = SURVEYED_UP.get(capture.name)
    if truth is None:  # no surveyed up: the cameras' own horizon must be level on average
        roll = np.degrees(np.arcsin(capture.c2w[:, :, 0] @ analysis.frame.up))
        assert abs(np.median(roll)) <= 3.0
    else:  # a horizon within 6°; a hand's roll leans the right vectors (4° in the cabinet's median)
        assert math.degrees(math.acos(np.clip(analysis.frame.up @ truth, -1, 1))) <= 6.0


def as_colmap_ply(capture, camera: int) -> tuple[np.ndarray, np.ndarray]:
    """The capture's gaussian centres in the frame of one of its cameras (x right, y down, z ahead),
    as a COLMAP-based trainer writes its PLY when COLMAP's world starts at that camera, and the
    rotation into that frame."""
    rotation = capture.c2w[camera, :, :3] * [1.0, -1.0, -1.0]  # OpenGL to OpenCV camera axes
    means = capture.gaussians.means.numpy().astype(np.float64)
    return (means - capture.c2w[camera, :, 3]) @ rotation, rotation.T


def test_a_real_ply_without_cameras_stands_on_its_floor(real) -> None:
    """A PLY from another tool, whichever camera COLMAP's world started at. The office's desk sets up
    (the convention alone leans 48° in the median with the cameras' pitch); the plush's bed holds too
    little of its cloud to be a floor, so the convention stays. Never worse than the convention."""
    capture, analysis, _ = real
    truth = SURVEYED_UP.get(capture.name, cameras_up(capture.c2w))
    opacities = torch.sigmoid(capture.gaussians.opacity_logits).numpy().reshape(-1)
    errors, convention_errors = [], []
    for camera in range(len(capture.c2w)):
        means, rotation = as_colmap_ply(capture, camera)
        up = frame_scene(means, opacities).up
        errors.append(math.degrees(math.acos(np.clip(up @ rotation @ truth, -1, 1))))
        convention_errors.append(math.degrees(math.acos(np.clip(-(rotation @ truth)[1], -1, 1))))
    errors, convention_errors = np.array(errors), np.array(convention_errors)
    assert np.mean(errors <= convention_errors + 1.0) >= 0.95
    if capture.name == "tum_fr1_rpy":  # a desk: flat, the content on both sides; the convention signs it
        assert np.mean(errors <= 12.0) >= 0.9


# --- paths on real captures -----------------------------------------------------------------


@pytest.mark.parametrize("frames", [SPEC.frames, None])  # None: the length the path chooses
def test_auto_is_supported_shows_the_capture_and_turns_calmly(real, frames) -> None:
    capture, analysis, _ = real
    planned = choose_path(analysis, capture.gaussians, replace(SPEC, frames=frames))
    score = planned.score
    assert score.supported >= 0.9, planned.path.reason
    assert score.coverage >= 0.6, planned.path.reason
    assert score.motion.max_turn_deg_s <= 90 and score.motion.max_roll_deg <= 6
    assert planned.path.figures["supported_frames"] == pytest.approx(score.supported, abs=1e-3)


def test_a_long_walk_makes_a_short_calm_preview(real) -> None:
    """The capture walked there, back and there again with ten cameras between each two of its own
    (1,300–2,100 views, a few minutes at a phone's rate): auto still makes 5–10 s of video, supported,
    showing what the capture saw, turning calmly."""
    capture, _, _ = real
    steps = np.arange(len(capture.c2w))
    between = np.linspace(0, len(capture.c2w) - 1, 10 * (len(capture.c2w) - 1) + 1)
    rotations = Slerp(steps, Rotation.from_matrix(capture.c2w[:, :, :3]))(between).as_matrix()
    positions = np.stack([np.interp(between, steps, capture.c2w[:, i, 3]) for i in range(3)], axis=1)
    once = np.concatenate([rotations, positions[:, :, None]], axis=2)
    walk = np.concatenate([once, once[::-1], once])
    cameras = pinhole_cameras(
        torch.as_tensor(walk, dtype=torch.float32), capture.focal, capture.width, capture.height
    )
    analysis = analyze_scene(capture.gaussians, cameras, observation=capture.observation)

    planned = choose_path(analysis, capture.gaussians, replace(SPEC, frames=None))

    assert 5 * planned.path.fps <= len(planned.path.c2w) <= 10 * planned.path.fps
    assert planned.score.supported >= 0.9 and planned.score.coverage >= 0.6, planned.path.reason
    assert planned.score.motion.max_turn_deg_s <= 90 and planned.score.motion.typical_turn_deg_s <= 60


def test_auto_frames_are_filled_with_the_capture(real) -> None:
    """The scan fills the frame, not a blob in the dark: in every tenth frame of auto's path, at
    least half of the pixels are covered (opacity ≥ 0.5, read off renders over black and white)."""
    capture, analysis, _ = real
    c2w = choose_path(analysis, capture.gaussians, SPEC).path.c2w[::10]
    width, height = 64, 36
    focal = capture.focal * width / capture.width
    K = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]]).expand(len(c2w), 3, 3)
    viewmats = viewmats_from_c2w(torch.as_tensor(c2w, dtype=torch.float32))
    over = [
        render_batch(capture.gaussians, viewmats, K, width, height, RenderSettings(torch.full((3,), value)))
        for value in (0.0, 1.0)
    ]
    opacity = 1 - (over[1] - over[0]).mean(dim=-1)  # [F,H,W]: what shows of the background is 1 − opacity
    assert (opacity >= 0.5).float().mean(dim=(1, 2)).min() >= 0.5


def test_flythrough_is_smooth_level_and_supported(real) -> None:
    capture, analysis, support = real
    path = plan_path(analysis, capture.gaussians, support, "flythrough", SPEC).path
    moved = motion(path.c2w, path.fps, analysis.frame.up)
    assert moved.max_turn_deg_s <= 90 and moved.typical_turn_deg_s <= 60
    assert moved.max_roll_deg <= 0.5
    steps = np.linalg.norm(np.diff(path.c2w[:, :, 3], axis=0), axis=1)
    # No jumps: no step far longer than both of its neighbours (a turn stepped back sweeps an arc,
    # so steps grow and shrink with the turning, smoothly).
    neighbours = np.maximum(np.concatenate([[0.0], steps[:-1]]), np.concatenate([steps[1:], [0.0]]))
    assert (steps <= 2 * neighbours + 1e-3 * support.scale).all()
    assert path.figures["supported_frames"] >= 0.9


def test_the_flythrough_steps_back_to_show_more_while_every_frame_stays_supported(real, monkeypatch) -> None:
    """It steps back where that shows more and keeps every frame supported (the office and the plush,
    as the README says), else it stays where the walk stood (the cabinet: the walk framed all of it
    already, and a step back shows no more)."""
    capture, analysis, support = real
    stepped = plan_path(analysis, capture.gaussians, support, "flythrough", SPEC)
    monkeypatch.setattr(flythrough, "STEP_BACK", ())
    in_place = plan_path(analysis, capture.gaussians, support, "flythrough", SPEC)
    moved = "of the viewing distance behind them" in stepped.path.reason
    assert moved == (capture.name in ("snowmiku_arc", "tum_fr1_rpy"))
    assert stepped.score.supported >= in_place.score.supported
    assert stepped.score.coverage >= in_place.score.coverage + (0.02 if moved else 0.0)
    assert np.allclose(stepped.path.c2w[:, :, :3], in_place.path.c2w[:, :, :3])  # only moved back
    back = np.einsum(
        "fi,fi->f", stepped.path.c2w[:, :, 3] - in_place.path.c2w[:, :, 3], in_place.path.c2w[:, :, 2]
    )
    assert np.allclose(back, back[0]) and (back[0] > 0 if moved else back[0] == 0)
    assert back[0] <= 0.3 * support.scale + 1e-6


def test_an_orbit_of_an_unsupported_side_is_measured_so() -> None:
    """The office seen from where its sensor stood: an orbit leaves the support (its frames show wall
    backs and floaters), and auto does not take it."""
    capture = real_captures.load("tum_fr1_rpy")
    analysis = analyze_scene(capture.gaussians, capture.cameras(), observation=capture.observation)
    support = capture_support(analysis, capture.gaussians)
    dollhouse = plan_path(analysis, capture.gaussians, support, "dollhouse", SPEC)
    assert dollhouse.score.supported <= 0.1
    assert choose_path(analysis, capture.gaussians, SPEC).path.kind != "dollhouse"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255**2 / max(error, 1e-9))


def render_at(capture, c2w: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """The fixture's splat from a camera at the photo's size, with the training cameras' intrinsics."""
    height, width = photo.shape[:2]
    scale = width / capture.width
    K = torch.tensor(
        [[capture.focal * scale, 0, width / 2], [0, capture.focal * scale, height / 2], [0, 0, 1.0]]
    )
    viewmats = viewmats_from_c2w(torch.as_tensor(c2w[None], dtype=torch.float32))
    settings = RenderSettings(torch.zeros(3))
    rgb = render_batch(capture.gaussians, viewmats, K[None], width, height, settings)[0]
    return (rgb.numpy() * 255).round().astype(np.uint8)


def test_flythrough_frames_near_a_training_view_look_like_its_photo(monkeypatch) -> None:
    """At its key views (before it steps back to show more), the flythrough sees what the photos saw."""
    monkeypatch.setattr(flythrough, "STEP_BACK", ())
    capture = real_captures.load("snowmiku_arc")
    analysis = analyze_scene(capture.gaussians, capture.cameras(), observation=capture.observation)
    support = capture_support(analysis, capture.gaussians)
    path = plan_path(analysis, capture.gaussians, support, "flythrough", SPEC).path
    forward = -path.c2w[:, :, 2]
    pairs = []  # (how far, photo index, frame index): each photo's closest frame
    for index in capture.photos:
        view = capture.c2w[index]
        near = np.linalg.norm(path.c2w[:, :, 3] - view[:, 3], axis=1) / support.scale
        turned = np.degrees(np.arccos(np.clip(forward @ -view[:, 2], -1, 1)))
        closest = int(np.argmin(near + turned / 30))
        pairs.append((near[closest] + turned[closest] / 30, index, closest))
    _, index, closest = min(pairs)
    photo, view = capture.photos[index], capture.c2w[index]
    frame = render_at(capture, path.c2w[closest], photo)
    # The same photo against a frame from the far side of what it looked at: what an unsupported path shows.
    target = view[:, 3] - support.scale * view[:, 2]
    opposite = look_at((2 * target - view[:, 3])[None], target, analysis.frame.up)[0]
    assert psnr(frame, photo) >= 14.0
    assert psnr(frame, photo) > psnr(render_at(capture, opposite, photo), photo) + 2
