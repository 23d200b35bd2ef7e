"""In-memory H.264 encoding: a web-ready MP4 that decodes back, published atomically."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from splat_render.encode import EncoderSpec, encode_frames
from splat_render.errors import PreviewInputError
from splat_render.yuv import rgb_to_yuv420

H, W = 96, 128
FAST = EncoderSpec(preset="ultrafast")


def rgb_frames(count: int) -> np.ndarray:
    """[count,H,W,3] uint8: a gradient sliding right with a moving square, so frames differ."""
    rows, cols = np.mgrid[0:H, 0:W]
    frames = np.empty((count, H, W, 3), np.uint8)
    for index in range(count):
        frames[index, ..., 0] = (cols * 2 + index * 4) % 256
        frames[index, ..., 1] = rows * 2
        frames[index, ..., 2] = 255 * ((abs(cols - 20 - index) < 12) & (abs(rows - 48) < 12))
    return frames


def batched(frames: np.ndarray, size: int) -> Iterator[np.ndarray]:
    yield from (frames[start : start + size] for start in range(0, len(frames), size))


def yuv_frames(count: int) -> np.ndarray:
    return rgb_to_yuv420(torch.from_numpy(rgb_frames(count)) / 255.0).numpy()


def top_level_boxes(path: Path) -> list[str]:
    """Types of the MP4's top-level boxes, in file order."""
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:  # a 64-bit size follows the type
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:  # the box runs to the end of the file
            size = len(data) - offset
        boxes.append(kind.decode("ascii"))
        offset += size
    return boxes


def test_yuv_frames_become_a_web_ready_h264_mp4(tmp_path: Path) -> None:
    out = tmp_path / "preview.mp4"
    result = encode_frames(batched(yuv_frames(45), 8), out, W, H, FAST)
    assert (result.path, result.frames, result.seconds, result.bytes) == (out, 45, 1.5, out.stat().st_size)
    assert result.encode_seconds > 0
    assert [p.name for p in tmp_path.iterdir()] == ["preview.mp4"]
    boxes = top_level_boxes(out)
    assert boxes[0] == "ftyp" and boxes.index("moov") < boxes.index("mdat")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        assert (context.name, context.pix_fmt, context.width, context.height) == ("h264", "yuv420p", W, H)
        assert stream.average_rate == 30
        assert container.duration / av.time_base == pytest.approx(1.5, abs=1 / 30)
        # BT.709 primaries, transfer and matrix (FFmpeg's code 1 for each), limited ("tv") range.
        colour = (context.color_primaries, context.color_trc, context.colorspace, context.color_range)
        assert colour == (1, 1, 1, 1)
        decoded = [frame.to_ndarray() for frame in container.decode(stream)]
    assert len(decoded) == 45
    source = yuv_frames(45)
    for index in (0, 22, 44):
        assert np.abs(decoded[index][:H].astype(int) - source[index][:H]).mean() < 4


def test_rgb_frames_are_converted_like_yuv_module(tmp_path: Path) -> None:
    """Both inputs encode to the same picture, so rgb24 input is BT.709 limited range too."""
    rgb_out, yuv_out = tmp_path / "rgb.mp4", tmp_path / "yuv.mp4"
    rgb_result = encode_frames(batched(rgb_frames(12), 5), rgb_out, W, H, FAST, pixel_format="rgb24")
    encode_frames(batched(yuv_frames(12), 5), yuv_out, W, H, FAST)
    assert rgb_result.frames == 12

    def decoded(path: Path) -> np.ndarray:
        with av.open(str(path)) as container:
            return np.stack([frame.to_ndarray() for frame in container.decode(video=0)]).astype(int)

    assert np.abs(decoded(rgb_out) - decoded(yuv_out)).mean() < 1.0


def test_success_replaces_an_existing_video(tmp_path: Path) -> None:
    out = tmp_path / "preview.mp4"
    out.write_bytes(b"old video")
    encode_frames(batched(yuv_frames(3), 3), out, W, H, FAST)
    assert out.read_bytes()[4:8] == b"ftyp"


def test_failure_mid_way_leaves_the_old_video_and_no_temp_file(tmp_path: Path) -> None:
    out = tmp_path / "preview.mp4"
    out.write_bytes(b"old video")

    def failing_batches() -> Iterator[np.ndarray]:
        yield yuv_frames(4)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        encode_frames(failing_batches(), out, W, H, FAST)
    assert out.read_bytes() == b"old video"
    assert [p.name for p in tmp_path.iterdir()] == ["preview.mp4"]


@pytest.mark.parametrize(
    "batch",
    [
        np.zeros((2, H, W), np.uint8),
        np.zeros((2, H * 3 // 2, W), np.float32),
        np.zeros((H * 3 // 2, W), np.uint8),
    ],
    ids=["short", "float", "unbatched"],
)
def test_wrong_batches_are_value_errors(tmp_path: Path, batch: np.ndarray) -> None:
    with pytest.raises(ValueError, match="expected uint8 frame batches"):
        encode_frames([batch], tmp_path / "preview.mp4", W, H, FAST)
    assert list(tmp_path.iterdir()) == []


def test_rgb_batch_shape_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[B,96,128,3\]"):
        encode_frames([yuv_frames(1)], tmp_path / "preview.mp4", W, H, FAST, pixel_format="rgb24")


def test_odd_size_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        encode_frames([], tmp_path / "preview.mp4", 127, 96, FAST)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"codec": "nope"}, "video encoder 'nope' is not available"),
        ({"preset": "sideways"}, "x264 preset must be one of ultrafast, "),
        ({"codec": "mjpeg"}, "cannot open video encoder mjpeg"),
    ],
    ids=["unknown-codec", "bad-preset", "not-a-video-codec"],
)
def test_unusable_encoder_fails_when_the_spec_is_made(changes: dict, message: str, capfd) -> None:
    """Before any frame is rendered, and in one line: x264 itself would print a bad preset too."""
    with pytest.raises(PreviewInputError, match=message):
        EncoderSpec(**changes)
    assert capfd.readouterr().err == ""


def test_zero_frames_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(PreviewInputError, match="no frames"):
        encode_frames(iter([]), tmp_path / "preview.mp4", W, H, FAST)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(PreviewInputError, match="output folder does not exist"):
        encode_frames(batched(yuv_frames(2), 2), tmp_path / "missing" / "preview.mp4", W, H, FAST)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a procfs to refuse the write")
def test_unwritable_folder_is_a_user_error() -> None:
    """procfs refuses new files even to root, unlike a folder without write permission."""
    with pytest.raises(PreviewInputError, match="cannot write /proc/preview.mp4: "):
        encode_frames(batched(yuv_frames(2), 2), Path("/proc/preview.mp4"), W, H, FAST)


def test_a_folder_in_the_outputs_place_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "preview.mp4").mkdir()
    with pytest.raises(PreviewInputError, match="preview.mp4: it is a folder"):
        encode_frames(batched(yuv_frames(2), 2), tmp_path / "preview.mp4", W, H, FAST)
    assert [p.name for p in tmp_path.iterdir()] == ["preview.mp4"]


@pytest.mark.parametrize("changes", [{"crf": 52}, {"crf": 23.5}, {"fps": 0}, {"fps": True}])
def test_spec_errors_are_user_errors(changes: dict) -> None:
    with pytest.raises(PreviewInputError, match="must be an integer between"):
        EncoderSpec(**changes)
