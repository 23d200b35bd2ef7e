"""The parts of scripts/gpu-pipeline-check that need no GPU: its scenes and its judgement of the preview."""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scenes import captures

from splat_render.encode import EncoderSpec, encode_frames
from splat_render.orbit import look_at
from splat_render.raster import RenderSettings, render_batch
from splat_render.sheet import write_image
from splat_render.synthetic import OBJECT_COLORS
from splat_render.views import viewmats_from_c2w

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu-pipeline-check"


@pytest.fixture(scope="module")
def check():
    """The script as a module (registered while loaded: its dataclasses look their module up)."""
    loader = importlib.machinery.SourceFileLoader("gpu_pipeline_check", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    sys.modules[loader.name] = module
    try:
        loader.exec_module(module)
        yield module
    finally:
        del sys.modules[loader.name]


def arguments(scene: str) -> argparse.Namespace:
    return argparse.Namespace(scene=scene, frames=30, held_out=4, gaussians=2000, seed=0)


def test_held_out_views_lie_between_filmed_frames(check) -> None:
    for frames, count in ((150, 12), (150, 7), (30, 4)):
        places = check.held_out_places(frames, count) * frames
        assert len(np.unique(places)) == count
        assert np.allclose(places % 1, 0.5)  # halfway between two frames, never on one
        assert places.min() > 0 and places.max() < frames


def test_closed_room_scene_of_the_check(check) -> None:
    capture = check.make_capture(arguments("closed-room"))
    room = captures.closed_room(gaussians=2000, cameras=30)
    assert torch.equal(capture.gaussians.means, room.gaussians.means)
    assert np.array_equal(capture.frames_c2w, room.camera_c2w)
    assert np.array_equal(capture.seen, ~room.residue)  # COLMAP finds no points on the hidden sky
    assert capture.object_colors == room.subject_colors
    # Held-out views are on the same walk, between the filmed frames.
    assert np.allclose(capture.held_out_c2w, captures.room_walk(check.held_out_places(30, 4)))
    distances = np.linalg.norm(
        capture.held_out_c2w[:, None, :, 3] - capture.frames_c2w[None, :, :, 3], axis=2
    )
    assert (distances.min(axis=1) > 0.05).all()


def test_dome_scene_of_the_check_keeps_floaters_out_of_the_colmap_points(check) -> None:
    capture = check.make_capture(arguments("dome"))
    floaters = 8  # SceneSpec's default, last in the scene
    assert capture.seen.sum() == len(capture.gaussians) - floaters and not capture.seen[-floaters:].any()
    assert capture.object_colors == OBJECT_COLORS


def write_job(job: Path, frames: np.ndarray, poster: bool = True) -> None:
    splatter = job / "refined/splatter"
    splatter.mkdir(parents=True)
    height, width = frames.shape[1:3]
    encode_frames([frames], splatter / "preview.mp4", width, height, EncoderSpec(), pixel_format="rgb24")
    if poster:
        write_image(frames[0], splatter / "preview.jpg")


def objects_in_frames(count: int, showing: int) -> np.ndarray:
    """Frames of grey floor; the first ``showing`` of them with a red and a blue box."""
    frames = np.full((count, 48, 64, 3), 120, np.uint8)
    frames[:showing, 10:20, 10:24] = np.round(np.array(OBJECT_COLORS["red"]) * 255)
    frames[:showing, 25:40, 30:50] = np.round(np.array(OBJECT_COLORS["blue"]) * 255)
    return frames


def test_the_preview_passes_when_most_frames_show_the_objects(check, tmp_path) -> None:
    write_job(tmp_path / "job", objects_in_frames(10, showing=8))
    out = tmp_path / "out"
    out.mkdir()
    judged = check.judge_preview(tmp_path / "job", OBJECT_COLORS, out)
    assert judged["failures"] == []
    assert judged["frames"] == 10
    assert judged["share_of_frames_showing_enough_objects"] == pytest.approx(0.8)
    assert judged["share_of_frames_showing"] == {"red": 0.8, "green": 0.0, "blue": 0.8, "yellow": 0.0}
    assert (out / "preview_sheet.png").is_file() and (out / "preview.jpg").is_file()


def test_the_preview_fails_when_the_objects_are_missing_in_too_many_frames(check, tmp_path) -> None:
    write_job(tmp_path / "job", objects_in_frames(10, showing=7))
    judged = check.judge_preview(tmp_path / "job", OBJECT_COLORS, tmp_path)
    assert len(judged["failures"]) == 1 and "objects in 70% of its frames" in judged["failures"][0]


def test_an_orbit_outside_the_closed_room_fails_and_a_missing_poster_is_reported(check, tmp_path) -> None:
    """The failure of issue 9: circling outside a room that was filmed from inside shows only its shell."""
    room = captures.closed_room(gaussians=3000, cameras=8, image_size=(64, 48))
    angles = np.linspace(0, 2 * math.pi, 6, endpoint=False)
    eyes = np.column_stack([16 * np.cos(angles), 16 * np.sin(angles), np.full(6, 9.0)])
    c2w = torch.from_numpy(look_at(eyes, np.array([0.0, 0.0, 1.0]), captures.Z_UP)).float()
    K = torch.from_numpy(room.intrinsics()).float().expand(6, 3, 3)
    settings = RenderSettings(torch.tensor([0.149, 0.165, 0.216]))
    frames = render_batch(room.gaussians, viewmats_from_c2w(c2w), K, 64, 48, settings)
    write_job(tmp_path / "job", (frames * 255).round().byte().numpy(), poster=False)
    judged = check.judge_preview(tmp_path / "job", room.subject_colors, tmp_path)
    assert judged["share_of_frames_showing_enough_objects"] == 0.0
    assert judged["failures"][0] == "no poster: refined/splatter/preview.jpg is missing"
    assert "objects in 0% of its frames" in judged["failures"][1]


def test_a_missing_preview_fails(check, tmp_path) -> None:
    (tmp_path / "job").mkdir()
    judged = check.judge_preview(tmp_path / "job", OBJECT_COLORS, tmp_path)
    assert judged["failures"][-1] == "no preview: refined/splatter/preview.mp4 is missing"
