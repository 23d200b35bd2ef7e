"""RGB → yuv420p on the device agrees with swscale's BT.709 limited-range conversion."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from splat_render.yuv import rgb_to_yuv420

H, W = 96, 128


def swscale_yuv420(rgb: np.ndarray) -> np.ndarray:
    """PyAV's own conversion; AREA scaling makes swscale's chroma a 2×2 mean too."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    converted = frame.reformat(
        format="yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
        interpolation=Interpolation.AREA,
    )
    return converted.to_ndarray()


def random_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def smooth_image() -> np.ndarray:
    rows, cols = np.mgrid[0:H, 0:W] / np.array([H, W])[:, None, None]
    return (
        (np.stack([cols, rows, 0.5 + 0.5 * np.sin(6 * (rows + cols))], axis=-1) * 255)
        .round()
        .astype(np.uint8)
    )


@pytest.mark.parametrize("image", [random_image(), smooth_image()], ids=["random", "smooth"])
def test_matches_swscale(image: np.ndarray) -> None:
    ours = rgb_to_yuv420(torch.from_numpy(image)[None] / 255.0)[0].numpy().astype(int)
    reference = swscale_yuv420(image).astype(int)
    assert ours.shape == reference.shape == (H * 3 // 2, W)
    for plane in (slice(0, H), slice(H, None)):  # luma, then both chroma planes
        difference = np.abs(ours[plane] - reference[plane])
        assert difference.mean() <= 1.0 and difference.max() <= 3


def test_pyav_takes_the_layout() -> None:
    """Each plane lands where from_ndarray reads it: a frame of distinct planes round-trips."""
    rgb = torch.zeros(1, H, W, 3)
    rgb[:, : H // 2, :, 0] = 1.0  # red top half: U and V differ between the halves
    yuv = rgb_to_yuv420(rgb)[0].numpy()
    frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    y, u, v = (np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size) for plane in frame.planes)
    assert (y[: H // 2, :W] == 63).all() and (y[H // 2 :, :W] == 16).all()
    assert (u[: H // 4, : W // 2] == 102).all() and (u[H // 4 : H // 2, : W // 2] == 128).all()
    assert (v[: H // 4, : W // 2] == 240).all() and (v[H // 4 : H // 2, : W // 2] == 128).all()
    np.testing.assert_array_equal(frame.to_ndarray(), yuv)


@pytest.mark.parametrize(
    "rgb, expected",
    [
        ((1.0, 1.0, 1.0), (235, 128, 128)),
        ((0.0, 0.0, 0.0), (16, 128, 128)),
        ((2.0, -1.0, 2.0), (78, 214, 230)),  # clamped to magenta first
        ((128 / 255, 128 / 255, 128 / 255), (126, 128, 128)),  # 125.93: rounded, not truncated
    ],
)
def test_known_colours(rgb: tuple[float, float, float], expected: tuple[int, int, int]) -> None:
    yuv = rgb_to_yuv420(torch.tensor(rgb).expand(2, 4, 6, 3))
    assert yuv.shape == (2, 6, 6) and yuv.dtype == torch.uint8
    assert (yuv[:, :4] == expected[0]).all()
    flat_chroma = yuv[:, 4:].reshape(2, -1)
    assert (flat_chroma[:, :6] == expected[1]).all() and (flat_chroma[:, 6:] == expected[2]).all()


def test_half_precision_input_is_accepted() -> None:
    image = smooth_image()
    full = rgb_to_yuv420(torch.from_numpy(image)[None] / 255.0)
    half = rgb_to_yuv420((torch.from_numpy(image)[None] / 255.0).half())
    assert (full.int() - half.int()).abs().max() <= 1


@pytest.mark.parametrize("shape", [(1, 95, 128, 3), (1, 96, 127, 3), (96, 128, 3), (1, 96, 128, 4)])
def test_bad_shapes_are_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        rgb_to_yuv420(torch.zeros(shape))


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    rgb = torch.from_numpy(random_image())[None] / 255.0
    on_cuda = rgb_to_yuv420(rgb.cuda())
    assert on_cuda.device.type == "cuda"
    assert (on_cuda.cpu().int() - rgb_to_yuv420(rgb).int()).abs().max() <= 1
