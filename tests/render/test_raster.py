"""Rasterization on the CPU: splatfacto's camera convention, the reference compositor, OOM back-off."""

from __future__ import annotations

import math

import pytest
import torch

from splat_render import raster
from splat_render.gaussians import SH_C0, Gaussians
from splat_render.raster import RenderSettings, blending_weights, render_batch, render_frames
from splat_render.views import pinhole_cameras, viewmats_from_c2w


def test_viewmats_match_splatfacto():
    from nerfstudio.models.splatfacto import get_viewmat

    c2w = torch.randn(5, 3, 4)
    c2w[:, :3, :3] = torch.linalg.qr(torch.randn(5, 3, 3)).Q
    assert torch.allclose(viewmats_from_c2w(c2w), get_viewmat(c2w), atol=1e-6)


def one_gaussian(opacity: float, rgb: tuple[float, float, float], scale: float = 0.2) -> Gaussians:
    return Gaussians(
        means=torch.zeros(1, 3),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        log_scales=torch.full((1, 3), math.log(scale)),
        opacity_logits=torch.logit(torch.tensor([opacity])),
        sh_dc=(torch.tensor([rgb]) - 0.5) / SH_C0,
        sh_rest=torch.zeros(1, 15, 3),
    )


def camera_looking_at_origin(distance: float = 2.0) -> torch.Tensor:
    """OpenGL c2w on +z looking down −z at the origin."""
    c2w = torch.zeros(1, 3, 4)
    c2w[0, :3, :3] = torch.eye(3)
    c2w[0, 2, 3] = distance
    return c2w


def test_reference_composites_one_gaussian_over_the_background():
    width = height = 64
    K = torch.tensor([[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]])
    background = torch.tensor([0.1, 0.2, 0.3])
    image = render_batch(
        one_gaussian(0.8, (0.9, 0.5, 0.1)),
        viewmats_from_c2w(camera_looking_at_origin()),
        K[None],
        width,
        height,
        RenderSettings(background),
    )[0]
    centre = image[31:33, 31:33].mean(dim=(0, 1))
    # At the centre the gaussian's weight is ~1: colour·α + background·(1−α).
    expected = 0.8 * torch.tensor([0.9, 0.5, 0.1]) + 0.2 * background
    assert torch.allclose(centre, expected, atol=0.01)
    assert torch.allclose(image[0, 0], background, atol=1e-6)  # far corner: background only
    # Symmetric footprint: the image equals its own mirror images (isotropic gaussian, centred camera).
    assert torch.allclose(image, image.flip(0), atol=1e-4) and torch.allclose(image, image.flip(1), atol=1e-4)


def test_front_gaussian_hides_the_back_one():
    red, blue = one_gaussian(0.999, (1.0, 0.0, 0.0)), one_gaussian(0.999, (0.0, 0.0, 1.0))
    both = Gaussians(*(torch.cat([getattr(blue, f), getattr(red, f)]) for f in FIELDS))
    both = Gaussians(
        both.means + torch.tensor([[0.0, 0, -0.5], [0, 0, 0.5]]), *(getattr(both, f) for f in FIELDS[1:])
    )
    K = torch.tensor([[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]])
    camera = viewmats_from_c2w(camera_looking_at_origin(3.0))
    image = render_batch(both, camera, K[None], 64, 64, RenderSettings(torch.zeros(3)))[0]
    centre = image[31:33, 31:33].mean(dim=(0, 1))
    assert centre[0] > 0.95 and centre[2] < 0.05  # red is nearer the camera (+z), whatever the order


FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")


def test_out_of_memory_halves_the_batch(monkeypatch):
    calls = []
    real = raster.render_batch

    def limited(gaussians, viewmats, Ks, width, height, settings):
        calls.append(len(viewmats))
        if len(viewmats) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(gaussians, viewmats, Ks, width, height, settings)

    monkeypatch.setattr(raster, "render_batch", limited)
    g = one_gaussian(0.7, (0.2, 0.8, 0.4))
    c2w = camera_looking_at_origin().expand(10, 3, 4).clone()
    c2w[:, 0, 3] = torch.linspace(-0.3, 0.3, 10)
    cameras = pinhole_cameras(c2w, 30.0, 32, 32)
    batches = list(render_frames(g, cameras, RenderSettings(torch.zeros(3)), batch_size=12))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert calls == [10, 6, 3, 3, 3, 1]  # 12 clipped to the 10 cameras, then halved until it fits
    frames = torch.cat(batches)
    one_by_one = torch.cat(list(render_frames(g, cameras, RenderSettings(torch.zeros(3)), batch_size=1)))
    assert torch.equal(frames, one_by_one)


def test_out_of_memory_with_single_cameras_is_raised(monkeypatch):
    def always(*args):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(raster, "render_batch", always)
    with pytest.raises(torch.OutOfMemoryError):
        list(
            render_frames(
                one_gaussian(0.5, (1, 1, 1)),
                pinhole_cameras(camera_looking_at_origin(), 8.0, 8, 8),
                RenderSettings(torch.zeros(3)),
                batch_size=4,
            )
        )


def red_before_blue() -> Gaussians:
    """A red gaussian at z=+0.5 in front of a blue one at z=−0.5 (the camera is on +z)."""
    red, blue = one_gaussian(0.999, (1.0, 0.0, 0.0)), one_gaussian(0.999, (0.0, 0.0, 1.0))
    both = Gaussians(*(torch.cat([getattr(red, f), getattr(blue, f)]) for f in FIELDS))
    return Gaussians(
        both.means + torch.tensor([[0.0, 0, 0.5], [0, 0, -0.5]]), *(getattr(both, f) for f in FIELDS[1:])
    )


def test_cuts_hide_per_frame_and_frames_without_cuts_stay_batched(monkeypatch):
    calls = []
    real = raster.render_batch

    def counting(gaussians, viewmats, Ks, width, height, settings):
        calls.append((len(viewmats), len(gaussians)))
        return real(gaussians, viewmats, Ks, width, height, settings)

    monkeypatch.setattr(raster, "render_batch", counting)
    cameras = pinhole_cameras(camera_looking_at_origin(3.0).expand(4, 3, 4).clone(), 60.0, 64, 64)
    never = [[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, -1.0]]
    in_front = [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, -1.0]]  # hides whatever lies at z > 0
    cuts = torch.tensor([[never], [never], [in_front], [never]])
    frames = torch.cat(
        list(render_frames(red_before_blue(), cameras, RenderSettings(torch.zeros(3)), 4, cuts))
    )
    centre = frames[:, 31:33, 31:33].mean(dim=(1, 2))
    assert centre[[0, 1, 3], 0].min() > 0.95  # red in front
    assert centre[2, 2] > 0.95 and centre[2, 0] < 0.05  # the cut took red away: blue shows
    assert calls == [(2, 2), (1, 1), (1, 2)]  # two frames batched, the cut frame alone with one gaussian


def test_blending_weights_count_what_each_view_saw():
    """A small blue gaussian behind a large red one counts from the back, hardly from the front."""
    K = torch.tensor([[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]])
    front = viewmats_from_c2w(camera_looking_at_origin(3.0))
    back_c2w = camera_looking_at_origin(3.0)
    back_c2w[0, :3, :3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))  # turned round: on −z looking at +z
    back_c2w[0, 2, 3] = -3.0
    red_big = one_gaussian(0.999, (1.0, 0.0, 0.0), scale=0.6)
    blue_small = one_gaussian(0.999, (0.0, 0.0, 1.0), scale=0.1)
    pair = Gaussians(*(torch.cat([getattr(red_big, f), getattr(blue_small, f)]) for f in FIELDS))
    pair = Gaussians(
        pair.means + torch.tensor([[0.0, 0, 0.5], [0, 0, -0.5]]), *(getattr(pair, f) for f in FIELDS[1:])
    )
    weights = blending_weights(
        pair, torch.cat([front, viewmats_from_c2w(back_c2w)]), K.expand(2, 3, 3), 64, 64
    )
    assert weights.shape == (2, 2)
    red, blue = weights[:, 0], weights[:, 1]
    assert blue[1] > 20 and blue[0] < 0.1 * blue[1]  # from the front, red covers blue
    assert red[0] > 100 and red[1] > 0.5 * red[0]  # the small one hides little of the large one
