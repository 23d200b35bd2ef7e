"""Frames in memory → a web-ready H.264 MP4, written atomically.

libx264 through PyAV, frame-threaded, ``moov`` box first (``+faststart``) so browsers start playing
before the download ends, colour tagged BT.709 limited range to match ``yuv.rgb_to_yuv420``. The
video is written under a temporary name beside ``out_path`` and renamed over it only when complete,
so a failed encode never leaves a half file or touches an older video. An ``EncoderSpec`` opens its
encoder once, on a throwaway in-memory file, when it is made: a bad codec, preset or crf fails before
any rendering.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc, Interpolation

from splat_render.errors import PreviewInputError
from splat_render.outputs import check_writable, published_together

PixelFormat = Literal["yuv420p", "rgb24"]

AVCOL_SPC_BT709 = 1  # FFmpeg's AVColorSpace value for BT.709; PyAV names only the swscale constants
# x264's own preset names; it prints a bad one to stderr itself, so it is refused before x264 sees it.
X264_PRESETS = (
    *("ultrafast", "superfast", "veryfast", "faster", "fast"),
    *("medium", "slow", "slower", "veryslow", "placebo"),
)
PROBE_SIZE = 64  # width and height of the throwaway encoder that checks a spec


@dataclass(frozen=True)
class EncoderSpec:
    crf: int = 23  # x264 constant rate factor: lower is better and bigger
    preset: str = "medium"
    fps: int = 30
    codec: str = "libx264"

    def __post_init__(self) -> None:
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise PreviewInputError(f"crf must be an integer between 0 and 51, got {self.crf!r}")
        if isinstance(self.fps, bool) or not isinstance(self.fps, int) or not 1 <= self.fps <= 240:
            raise PreviewInputError(f"fps must be an integer between 1 and 240, got {self.fps!r}")
        if self.codec == "libx264" and self.preset not in X264_PRESETS:
            presets = ", ".join(X264_PRESETS)
            raise PreviewInputError(f"x264 preset must be one of {presets}, got {self.preset!r}")
        with av.open(io.BytesIO(), "w", format="mp4") as probe:
            _open_stream(probe, PROBE_SIZE, PROBE_SIZE, self)


@dataclass(frozen=True)
class EncodeResult:
    path: Path
    frames: int
    seconds: float  # video duration
    bytes: int
    encode_seconds: float  # wall time spent converting, encoding and muxing, not waiting for batches


def encode_frames(
    batches: Iterable[np.ndarray],  # uint8 [B,H*3//2,W] (yuv420p) or [B,H,W,3] (rgb24)
    out_path: Path,
    width: int,
    height: int,
    spec: EncoderSpec,
    pixel_format: PixelFormat = "yuv420p",
) -> EncodeResult:
    """Encode every frame of `batches` into `out_path`, replacing it only once the video is complete."""
    out_path = Path(out_path)
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even positive width and height, got {width}x{height}")
    if pixel_format not in ("yuv420p", "rgb24"):
        raise ValueError(f"pixel_format must be 'yuv420p' or 'rgb24', got {pixel_format!r}")
    check_writable([out_path])
    frame_shape = (height * 3 // 2, width) if pixel_format == "yuv420p" else (height, width, 3)
    frames = 0
    encode_seconds = 0.0
    with published_together([out_path]) as temps:
        faststart = {"movflags": "+faststart"}
        with av.open(str(temps[out_path]), "w", format="mp4", container_options=faststart) as output:
            stream = _open_stream(output, width, height, spec)
            output.start_encoding()
            for batch in batches:
                started = time.perf_counter()
                for frame in _video_frames(batch, frame_shape, pixel_format):
                    frame.pts = frames
                    output.mux(stream.encode(frame))
                    frames += 1
                encode_seconds += time.perf_counter() - started
            if frames == 0:
                raise PreviewInputError("no frames to encode: the renderer produced none")
            started = time.perf_counter()
            output.mux(stream.encode(None))
        encode_seconds += time.perf_counter() - started  # closing writes the moov box, then moves it first
    return EncodeResult(out_path, frames, frames / spec.fps, out_path.stat().st_size, encode_seconds)


def _open_stream(
    output: av.container.OutputContainer, width: int, height: int, spec: EncoderSpec
) -> av.video.stream.VideoStream:
    """Add and open the video stream, turning an unusable codec or setting into one line."""
    try:
        stream = output.add_stream(
            spec.codec, rate=spec.fps, options={"crf": str(spec.crf), "preset": spec.preset}
        )
    except ValueError as exc:  # an unknown codec, or one the MP4 muxer cannot hold
        raise PreviewInputError(f"video encoder {spec.codec!r} is not available for MP4: {exc}") from exc
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    context = stream.codec_context
    context.time_base = Fraction(1, spec.fps)
    context.thread_type = "FRAME"  # PyAV's default SLICE threading costs x264 much of its throughput
    context.color_primaries = ColorPrimaries.BT709
    context.color_trc = ColorTrc.BT709
    context.colorspace = AVCOL_SPC_BT709
    context.color_range = ColorRange.MPEG
    try:
        context.open()
    except av.FFmpegError as exc:
        raise PreviewInputError(
            f"cannot open video encoder {spec.codec} (preset {spec.preset!r}, crf {spec.crf}): {exc}"
        ) from exc
    return stream


def _video_frames(
    batch: np.ndarray, frame_shape: tuple[int, ...], pixel_format: PixelFormat
) -> Iterator[av.VideoFrame]:
    """The batch's frames as yuv420p VideoFrames; RGB is converted like `yuv.rgb_to_yuv420` does."""
    if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8 or batch.shape[1:] != frame_shape:
        got = f"{batch.dtype} {batch.shape}" if isinstance(batch, np.ndarray) else type(batch).__name__
        raise ValueError(f"expected uint8 frame batches [B,{','.join(map(str, frame_shape))}], got {got}")
    for array in np.ascontiguousarray(batch):
        frame = av.VideoFrame.from_ndarray(array, format=pixel_format)
        if pixel_format == "rgb24":
            frame = frame.reformat(
                format="yuv420p",
                dst_colorspace=Colorspace.ITU709,
                dst_color_range=ColorRange.MPEG,
                interpolation=Interpolation.AREA,
            )
        yield frame
