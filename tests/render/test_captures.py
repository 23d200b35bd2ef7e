"""Scenes built like real captures, and the judges that read rendered frames, on small CPU renders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scenes import captures, judge

from splat_render.encode import EncoderSpec, encode_frames
from splat_render.gaussians import Gaussians
from splat_render.orbit import look_at
from splat_render.ply import read_gaussians
from splat_render.raster import RenderSettings, render_batch
from splat_render.sheet import yuv420_to_rgb
from splat_render.synthetic import ROOM_SIZE
from splat_render.views import viewmats_from_c2w
from splat_render.yuv import rgb_to_yuv420

SMALL = {"gaussians": 3000, "cameras": 24, "image_size": (64, 48)}
SPLATFACTO_GREY = (0.1490, 0.1647, 0.2157)
FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")


@pytest.fixture(scope="module")
def room() -> captures.Capture:
    return captures.closed_room(**SMALL)


@pytest.fixture(scope="module")
def statue() -> captures.Capture:
    return captures.object_capture(**SMALL)


@pytest.fixture(scope="module")
def half_statue() -> captures.Capture:
    return captures.object_capture(**SMALL, arc_deg=180)


def render(
    capture: captures.Capture,
    c2w: np.ndarray,
    gaussians: Gaussians | None = None,
    background: tuple[float, float, float] = SPLATFACTO_GREY,
) -> np.ndarray:
    """uint8 [N,H,W,3] frames of the capture's cameras ``c2w`` through the CPU reference renderer."""
    viewmats = viewmats_from_c2w(torch.from_numpy(c2w).float())
    K = torch.from_numpy(capture.intrinsics()).float().expand(len(viewmats), 3, 3)
    settings = RenderSettings(torch.tensor(background))
    frames = render_batch(
        gaussians or capture.gaussians, viewmats, K, capture.width, capture.height, settings
    )
    return (frames * 255).round().byte().numpy()


def as_played(frames: np.ndarray) -> np.ndarray:
    """The frames after the preview's BT.709 YUV 4:2:0 conversion and a player's conversion back."""
    yuv = rgb_to_yuv420(torch.from_numpy(frames).float() / 255).numpy()
    return np.stack([yuv420_to_rgb(frame) for frame in yuv])


def without(capture: captures.Capture, mask: np.ndarray) -> Gaussians:
    return capture.gaussians.select(torch.from_numpy(~mask))


def assert_same_capture(a: captures.Capture, b: captures.Capture) -> None:
    for field in FIELDS:
        assert torch.equal(getattr(a.gaussians, field), getattr(b.gaussians, field)), field
    assert np.array_equal(a.camera_c2w, b.camera_c2w)
    assert np.array_equal(a.subject, b.subject) and np.array_equal(a.residue, b.residue)


# --- the scenes -----------------------------------------------------------------------------


@pytest.mark.parametrize("build", [captures.closed_room, captures.object_capture])
def test_builders_are_deterministic_for_a_seed(build) -> None:
    small = {**SMALL, "gaussians": 600, "cameras": 12}
    assert_same_capture(build(**small), build(**small))
    assert not torch.equal(build(**small).gaussians.means, build(**small, seed=1).gaussians.means)


def test_scenes_have_the_sizes_asked_for(room, statue) -> None:
    for capture in (room, statue):
        assert len(capture.gaussians) == SMALL["gaussians"]
        assert capture.camera_c2w.shape == (SMALL["cameras"], 3, 4)
        assert capture.gaussians.sh_degree == 3
        assert (capture.width, capture.height) == SMALL["image_size"]
        assert not (capture.subject & capture.residue).any()
        assert capture.subject.sum() > 100 and capture.residue.sum() > 100
        subject_colors = capture.gaussians.base_colors()[torch.from_numpy(capture.subject)].numpy()
        nearest = np.linalg.norm(subject_colors[:, None] - list(capture.subject_colors.values()), axis=2)
        assert np.median(nearest.min(axis=1)) < 0.15  # the subject is painted in its colours
    assert statue.residue.sum() == round(0.4 * SMALL["gaussians"])


@pytest.mark.parametrize("name", ["room", "statue", "half_statue"])
def test_cameras_are_orthonormal_and_right_handed(name, request) -> None:
    rotations = request.getfixturevalue(name).camera_c2w[:, :, :3]
    assert np.allclose(np.einsum("nji,njk->nik", rotations, rotations), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(rotations), 1.0)


def test_the_walk_stays_inside_the_room_at_eye_height_looking_about_level(room) -> None:
    eyes = room.camera_c2w[:, :, 3]
    half = np.array(ROOM_SIZE[:2]) / 2
    assert (np.abs(eyes[:, :2]) < half - 0.8).all()
    assert ((eyes[:, 2] > 1.5) & (eyes[:, 2] < 1.7)).all()
    looking = -room.camera_c2w[:, :, 2]
    pitch = np.degrees(np.arcsin(looking[:, 2]))
    assert (pitch < 0).all() and (pitch > -30).all()
    rolls = np.degrees(np.arcsin(room.camera_c2w[:, 2, 0]))  # how far "right" tilts out of level
    assert np.abs(rolls).max() < 8
    # Walking round the loop, a camera looks ahead (its view turns with the walk), not at the centre.
    outward = eyes[:, :2] / np.linalg.norm(eyes[:, :2], axis=1, keepdims=True)
    assert (np.einsum("ni,ni->n", looking[:, :2], outward) > -0.5).all()


def test_the_closed_room_shows_only_itself_to_its_cameras(room) -> None:
    """Every training view is all room: no background shows through, so the sky shell cannot either."""
    views = room.camera_c2w[::8]
    room_only = without(room, room.residue)
    over_black = render(room, views, room_only, background=(0.0, 0.0, 0.0)).astype(int)
    over_white = render(room, views, room_only, background=(1.0, 1.0, 1.0)).astype(int)
    assert np.abs(over_black - over_white).max() <= 2
    sky = room.gaussians.means[torch.from_numpy(room.residue)].numpy()
    assert (np.linalg.norm(sky - [0, 0, ROOM_SIZE[2] / 2], axis=1) > 10).all()  # well outside the walls


@pytest.mark.parametrize("name", ["statue", "half_statue"])
def test_object_residue_lies_outside_every_training_frustum(name, request) -> None:
    capture = request.getfixturevalue(name)
    residue = capture.gaussians.means[torch.from_numpy(capture.residue)].double().numpy()
    for c2w in capture.camera_c2w:
        local = (residue - c2w[:, 3]) @ c2w[:, :3]
        depth = -local[:, 2]
        pixel = capture.focal * local[:, :2] / np.maximum(depth[:, None], 1e-9)
        inside = (depth > 0) & (np.abs(pixel) < [capture.width / 2, capture.height / 2]).all(axis=1)
        assert not inside.any()
    # Nor does any of it reach into a training view.
    views = capture.camera_c2w[::6]
    clean = render(capture, views, without(capture, capture.residue)).astype(int)
    assert np.abs(render(capture, views) - clean).max() <= 2
    half_side = 5 * captures.OBJECT_SIZE
    assert (np.abs(residue - captures.OBJECT_CENTER) <= half_side + 1e-6).all()


@pytest.mark.parametrize(("name", "arc"), [("statue", 360), ("half_statue", 180)])
def test_object_cameras_cover_their_arc_around_the_object(name, arc, request) -> None:
    capture = request.getfixturevalue(name)
    eyes = capture.camera_c2w[:, :, 3] - captures.OBJECT_CENTER
    azimuths = np.sort(np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0])) % 360)
    gaps = np.diff(np.concatenate([azimuths, azimuths[:1] + 360]))
    assert 360 - gaps.max() == pytest.approx(arc, abs=360 / len(eyes) + 1e-6)
    assert len(np.unique(eyes[:, 2].round(1))) == 3  # three heights
    # Every camera looks at the object: its centre projects near the image centre.
    local = np.einsum("nji,nj->ni", capture.camera_c2w[:, :, :3], -eyes)
    offsets = capture.focal * local[:, :2] / -local[:, 2:]
    assert (np.abs(offsets) < [capture.width / 4, capture.height / 4]).all()


def test_inria_ply_is_up_minus_y_without_a_header_comment(statue, tmp_path) -> None:
    path = tmp_path / "point_cloud.ply"
    written = captures.inria_ply(path, statue)
    header = path.read_bytes().split(b"end_header")[0].decode()
    assert "comment" not in header and "Vertical Axis" not in header
    loaded = read_gaussians(path)
    for field in FIELDS:
        assert torch.equal(getattr(loaded, field), getattr(written.gaussians, field)), field
    assert np.allclose(written.up, [0.0, -1.0, 0.0])
    # The object stands along −y on its base: heights (−y) from the base up to its top.
    heights = -loaded.means[torch.from_numpy(statue.subject), 1].numpy()
    assert heights.min() > -0.01 and 1.0 < heights.max() < 1.2
    camera_up = written.camera_c2w[:, :, 1].mean(axis=0)
    assert math.degrees(math.acos(-camera_up[1] / np.linalg.norm(camera_up))) < 10
    # The whole world turned, ellipsoids included: the turned cameras see what the originals saw
    # (up to the view-dependent colour, whose SH coefficients are not rotated; left out here).
    views = statue.camera_c2w[::8]
    difference = render(written, written.camera_c2w[::8], view_independent(written)).astype(int) - render(
        statue, views, view_independent(statue)
    )
    assert np.abs(difference).max() <= 2


def view_independent(capture: captures.Capture) -> Gaussians:
    g = capture.gaussians
    return Gaussians(g.means, g.quats, g.log_scales, g.opacity_logits, g.sh_dc, torch.zeros_like(g.sh_rest))


# --- the judges -----------------------------------------------------------------------------


def test_judge_sees_the_object_in_its_training_views_and_not_looking_away(statue) -> None:
    toward = as_played(render(statue, statue.camera_c2w[::6]))
    fractions = judge.color_fractions(toward, statue.subject_colors)
    assert (judge.visible_counts(fractions) == 4).all()
    assert judge.share_showing(fractions, at_least=4) == 1.0
    eyes = statue.camera_c2w[::6, :, 3]
    away = as_played(render(statue, look_at(eyes, eyes * [3, 3, 1], captures.Z_UP)))
    assert (judge.visible_counts(judge.color_fractions(away, statue.subject_colors)) == 0).all()
    assert (judge.coverage(toward, statue.residue_colors) < 0.001).all()


def test_judge_sees_the_room_furniture_a_view_faces_and_none_on_the_ceiling(room) -> None:
    red_table = np.array([*captures.FURNITURE["red"][0], 0.4])
    eye = np.array([[0.0, 0.0, 1.6]])
    frames = as_played(render(room, np.concatenate([look_at(eye, red_table, captures.Z_UP), ceiling_view()])))
    fractions = judge.color_fractions(frames, room.subject_colors)
    names = list(room.subject_colors)
    assert fractions[0, names.index("red")] > 0.05
    assert judge.visible_counts(fractions).tolist() == [1, 0]
    assert (judge.coverage(frames, room.residue_colors) < 0.001).all()


def ceiling_view() -> np.ndarray:
    """From the middle of the room straight up (OpenGL: looking down −z of the camera)."""
    return np.array([[[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 1.6]]])


def test_judge_measures_residue_where_no_camera_looked(statue) -> None:
    """From high above, outside the noise cube, the view meets the noise no camera saw."""
    above = look_at(np.array([[0.0, -2.0, 14.0]]), captures.OBJECT_CENTER, captures.Z_UP)
    frames = as_played(render(statue, above))
    assert judge.coverage(frames, statue.residue_colors)[0] > 0.8
    clean = as_played(render(statue, above, without(statue, statue.residue)))
    assert judge.coverage(clean, statue.residue_colors)[0] == 0.0


def test_span_and_cut_on_a_hand_made_frame() -> None:
    frame = np.full((60, 100, 3), 40, np.uint8)
    frame[10:40, 20:70] = (217, 31, 26)  # red, 50 of 100 columns, 30 of 60 rows
    red = {"red": (0.85, 0.12, 0.10)}
    mask = judge.color_mask(frame, red)
    assert mask.sum() == 50 * 30
    assert judge.span(mask) == pytest.approx(0.5, abs=0.01)
    assert not judge.is_cut(mask)
    frame[5, 95] = (217, 31, 26)  # one stray pixel changes neither
    mask = judge.color_mask(frame, red)
    assert judge.span(mask) == pytest.approx(0.5, abs=0.01) and not judge.is_cut(mask)
    frame[0:54, 30:40] = (217, 31, 26)  # taller than wide: the height limits, and it touches the top
    mask = judge.color_mask(frame, red)
    assert judge.span(mask) == pytest.approx(54 / 60, abs=0.015)
    assert judge.is_cut(mask)
    assert judge.span(np.zeros((60, 100), bool)) == 0.0 and not judge.is_cut(np.zeros((60, 100), bool))


def test_content_span_of_the_object_in_a_training_view(statue) -> None:
    """All content (object and base) against the background is wider than the object's colours alone."""
    frame = as_played(render(statue, statue.camera_c2w[:1]))[0]
    content = judge.foreground_mask(frame, SPLATFACTO_GREY)
    subject = judge.color_mask(frame, statue.subject_colors)
    assert (content | ~subject).all()  # the subject is content
    assert 0.4 < judge.span(subject) < judge.span(content) < 0.9
    assert not judge.is_cut(subject)


def test_colour_fractions_survive_encoding_and_decoding(tmp_path) -> None:
    frames = np.full((6, 48, 64, 3), 90, np.uint8)
    frames[:, 8:24, 8:32] = (217, 31, 26)  # red: 16×24 of 48×64 = 12.5 %
    frames[3:, 30:46, 40:60] = (31, 64, 217)  # blue in the last three frames: 10.4 %
    colors = {"red": (0.85, 0.12, 0.10), "blue": (0.12, 0.25, 0.85)}
    out = tmp_path / "clip.mp4"
    encode_frames([frames], out, 64, 48, EncoderSpec(), pixel_format="rgb24")
    decoded = judge.decode_video(out)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    fractions = judge.color_fractions(decoded, colors)
    assert np.allclose(fractions, judge.color_fractions(frames, colors), atol=0.02)
    assert judge.share_showing(fractions, at_least=2) == 0.5
