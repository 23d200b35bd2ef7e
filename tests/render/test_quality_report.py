"""The quality report's figures where the truth is known, and the coverage picture judged on pixels.

- Quality: a synthetic run whose images are its own renders plus noise of a known deviation: PSNR
  must come out as that noise's (−20·log10 σ), on the held-out and the training views alike; a real
  capture's photos score clearly better against their own view than against another view.
- Coverage: an object filmed all round is well seen; the same object filmed over half a circle is
  not, the thin region is named on its unfilmed side, and the picture from there is tinted.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scenes import captures
from scenes.real_captures import load

from splat_render.analysis import analyze_scene, training_views
from splat_render.coverage import TINT, measure_coverage, tinted
from splat_render.model import load_splatfacto
from splat_render.orbit import look_at
from splat_render.quality import Evaluation, Target, ViewSet, measure_views
from splat_render.raster import RenderSettings, render_batch
from splat_render.synthetic import SceneSpec, write_synthetic_run
from splat_render.views import pinhole_cameras, viewmats_from_c2w

CPU = torch.device("cpu")
GREY = RenderSettings(torch.tensor([0.15, 0.16, 0.22]))


def render(gaussians, c2w: np.ndarray, focal: float, width: int, height: int, settings=GREY) -> torch.Tensor:
    """[C,H,W,3] renders of OpenGL cameras [C,3,4]."""
    c2w_t = torch.as_tensor(c2w, dtype=torch.float32)
    K = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]]).expand(len(c2w_t), 3, 3)
    return render_batch(gaussians, viewmats_from_c2w(c2w_t), K, width, height, settings)


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    """A synthetic run whose images are its renders plus Gaussian noise of σ = 0.05 (PNG, lossless)."""
    root = tmp_path_factory.mktemp("noisy")
    spec = SceneSpec(gaussians=2000, cameras=20, image_size=(64, 48))
    run = write_synthetic_run(root, spec)
    loaded = load_splatfacto(run.config, CPU)
    settings = RenderSettings(loaded.background, loaded.rasterize_mode)
    transforms = json.loads(run.transforms.read_text())
    scene = run.scene
    frames = render(scene.gaussians, scene.camera_c2w, scene.focal, *spec.image_size, settings)
    rng = np.random.default_rng(0)
    for frame, image in zip(transforms["frames"], frames.numpy(), strict=True):
        frame["file_path"] = frame["file_path"].replace(".jpg", ".png")
        noisy = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1)
        path = run.transforms.parent / frame["file_path"]
        path.parent.mkdir(exist_ok=True)
        Image.fromarray((noisy * 255).round().astype(np.uint8)).save(path)
    run.transforms.write_text(json.dumps(transforms))
    return loaded, settings


def test_psnr_is_that_of_the_known_noise_on_held_out_and_training_views(noisy_run):
    loaded, settings = noisy_run
    evaluation = Evaluation(loaded.dataparser, CPU)
    try:
        report = evaluation.measure(loaded.gaussians, settings)
    finally:
        evaluation.close()

    expected = -20 * math.log10(0.05)  # 26.0 dB; clipping at 0 and 1 only raises it a little
    held_out, training = report["held_out"], report["training"]
    assert (held_out["views"], held_out["of"]) == (2, 2)  # nerfstudio keeps 2 of 20 out
    assert (training["views"], training["of"]) == (4, 18)
    for split in (held_out, training):
        assert expected - 0.3 < split["psnr"] < expected + 1.5
        assert all(expected - 0.5 < view["psnr"] < expected + 2 for view in split["per_view"])
        assert 0.2 < split["ssim"] < 0.95
    assert held_out["per_view"][0]["image"].endswith(".png")


def test_a_run_without_its_images_says_so(tmp_path):
    run = write_synthetic_run(tmp_path, SceneSpec(gaussians=500, cameras=10, image_size=(32, 24)))
    loaded = load_splatfacto(run.config, CPU)
    evaluation = Evaluation(loaded.dataparser, CPU)
    try:
        report = evaluation.measure(loaded.gaussians, GREY)
    finally:
        evaluation.close()
    assert report["held_out"] is None and report["training"] is None
    note = report["note"]
    assert note.startswith("no views to measure: the run's images are missing (") and note.endswith(
        ".jpg)"
    ), note


def test_a_real_capture_scores_better_against_its_own_photo_than_another():
    capture = load("snowmiku_arc")
    targets = []
    for index, photo in capture.photos.items():
        height, width = photo.shape[:2]
        scale = width / capture.width
        K = torch.tensor(
            [[capture.focal * scale, 0, width / 2], [0, capture.focal * scale, height / 2], [0, 0, 1]]
        )
        image = torch.from_numpy(photo.astype(np.float32) / 255)
        targets.append((index, torch.as_tensor(capture.c2w[index], dtype=torch.float32), K, image))
    own = ViewSet("training", len(targets), tuple(done(Target(str(i), c, K, im)) for i, c, K, im in targets))
    shifted = targets[1:] + targets[:1]  # each camera against the next view's photo
    other = ViewSet(
        "training",
        len(targets),
        tuple(
            done(Target(str(i), c, K, im))
            for (i, c, K, _), (_, _, _, im) in zip(targets, shifted, strict=True)
        ),
    )
    matched, mismatched = (
        measure_views(capture.gaussians, GREY, own),
        measure_views(capture.gaussians, GREY, other),
    )
    assert matched["views"] == len(capture.photos)
    assert matched["psnr"] > 17 and matched["psnr"] > mismatched["psnr"] + 3
    assert matched["ssim"] > mismatched["ssim"] + 0.1


def done(target: Target) -> Future:
    future: Future = Future()
    future.set_result(target)
    return future


def object_coverage(arc_deg: float):
    capture = captures.object_capture(gaussians=6000, cameras=18, arc_deg=arc_deg, image_size=(64, 48))
    cameras = pinhole_cameras(
        torch.as_tensor(capture.camera_c2w, dtype=torch.float32), capture.focal, capture.width, capture.height
    )
    analysis = analyze_scene(capture.gaussians, cameras, up=capture.up)
    assert training_views(cameras).c2w.shape[0] == 18
    front = look_at(np.array([[0.0, -2.5, 1.2]]), captures.OBJECT_CENTER[None], captures.Z_UP)[0]
    return capture, analysis, measure_coverage(analysis, capture.gaussians, front)


@pytest.fixture(scope="module")
def all_round():
    return object_coverage(360.0)


@pytest.fixture(scope="module")
def half_round():
    return object_coverage(180.0)


def test_an_object_filmed_all_round_is_well_seen(all_round):
    figures = all_round[2].figures()
    assert figures["well_seen"] > 0.75 and figures["unseen"] < 0.1
    assert figures["distinct_angle_deg"] == 15.0 and figures["views_compared"] == 18


def test_an_unfilmed_side_is_thin_and_named(all_round, half_round):
    whole, half = all_round[2].figures(), half_round[2].figures()
    assert half["well_seen"] < whole["well_seen"] - 0.05
    assert half["unseen"] + half["one_direction"] > 2 * (whole["unseen"] + whole["one_direction"])
    for (_, _, coverage), most in ((all_round, 0.15), (half_round, None)):
        x, y, z = coverage.points.T
        back = (
            (y > 0.28) & (np.abs(x) < 0.25) & (z > 0.02) & (z < 0.33)
        )  # the red box's back face, at y = 0.3
        thin = float((coverage.directions[back] < 3).mean())
        assert thin < most if most is not None else thin > 0.5
    top = half["thin_regions"][0]
    assert top["where"].startswith("far") and top["center"][1] > 0  # the cameras stood at −y
    assert top["thin"] > 0.8


def tint_share(capture, analysis, coverage, eye: tuple[float, float, float], out: Path) -> float:
    """Share of the object's pixels, seen from ``eye``, that the tint moved towards it."""
    c2w = look_at(np.array([eye]), captures.OBJECT_CENTER[None], captures.Z_UP)
    drawn = capture.gaussians.select(torch.as_tensor(analysis.shown))  # as the preview draws them
    plain = render(drawn, c2w, 60.0, 96, 72)[0]
    marked = render(tinted(drawn, coverage, analysis.frame), c2w, 60.0, 96, 72)[0]
    Image.fromarray((torch.cat([plain, marked], 1).numpy() * 255).astype(np.uint8)).save(out)
    tint = torch.tensor(TINT)
    nearer = (plain - tint).norm(dim=2) - (marked - tint).norm(dim=2)
    obj = (plain - GREY.background).norm(dim=2) > 0.1
    return float((nearer[obj] > 0.15).float().mean())


def test_the_picture_tints_the_unfilmed_side(half_round, tmp_path):
    capture, analysis, coverage = half_round
    back = tint_share(capture, analysis, coverage, (0.0, 2.5, 1.2), tmp_path / "back.png")
    front = tint_share(capture, analysis, coverage, (0.0, -2.5, 1.2), tmp_path / "front.png")
    assert back > 0.12 and back > 4 * front, (back, front)
