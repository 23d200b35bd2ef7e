"""Step 1: the frames of every dataset's ``Frames.mp4`` that the COLMAP model names become JPEG files
in the job's ``Frames/`` folder (every frame is decoded, to count them; only those are written).

A frame is named ``<dataset>_<NNNNNN>.jpg``, NNNNNN being its 0-based position in decode order,
zero-padded to six digits: ``scan1_000000.jpg`` is the first frame of ``datasets/scan1/Frames.mp4``.
ns-process-data finds each COLMAP image by its name in images.bin, so the reconstruction must name
frames exactly this way.

Frames are stored as upstream's extractor (OpenCV) returns them, since the COLMAP model the job
carries was made from those: a video whose display matrix turns it by a quarter, half or three-quarter
turn (a phone held upright records one) is turned so; other angles and mirroring are, as there, not
applied.

Each frame is written under a temporary name in the same folder and renamed once complete, so a full
disk or a crash leaves whole JPEGs only; an OS error ends the extraction with a one-line PipelineError.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

JPEG_QUALITY = 95
MAX_FRAMES = 36_000
"""Frames one recording may hold (20 minutes at 30 fps): a few megabytes of still video decode to
hundreds of thousands of frames, which would fill the disk with JPEGs before training could start."""
MAX_FRAME_PIXELS = 7680 * 4320
"""The largest frame a recording may hold (8K UHD; phones record at most that). Larger ones would
take gigabytes per frame in flight."""
# Colour conversion and JPEG encoding release the GIL: a few threads keep up with the decoder.
ENCODER_THREADS = min(8, os.cpu_count() or 1)
# What turns an image clockwise by so many degrees (PIL's names count counter-clockwise).
CLOCKWISE = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Dataset:
    """One recording of the scan: its name (the folder's) and its video."""

    name: str
    video: Path


def frame_name(dataset: str, index: int) -> str:
    """The file name of the ``index``-th (0-based) decoded frame of a dataset's video."""
    return f"{dataset}_{index:06d}.jpg"


def extract_frames(dataset: Dataset, frames_dir: Path, wanted: Collection[str] | None = None) -> int:
    """Write the frames of the dataset's video as JPEGs, only those named in ``wanted`` if given (the
    COLMAP model's images: a recording holds many more frames than its reconstruction registered,
    and ns-process-data copies and downscales every image it finds); return how many were written."""
    try:
        frames_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PipelineError(f"cannot create {frames_dir}: {exc.strerror or exc}") from exc
    count = written = 0
    encoders = ThreadPoolExecutor(ENCODER_THREADS)
    try:
        with av.open(str(dataset.video)) as container:
            if not container.streams.video:
                raise PipelineError(f"{dataset.video} holds no video stream")
            stream = container.streams.video[0]
            _check_size(dataset.video, stream.codec_context.width, stream.codec_context.height)
            stream.thread_type = "AUTO"
            pending: deque[Future] = deque()
            for count, frame in enumerate(container.decode(stream), start=1):
                if count > MAX_FRAMES:
                    raise PipelineError(
                        f"{dataset.video} holds more than {MAX_FRAMES} frames (20 minutes at 30 fps); "
                        "record the scan in shorter parts"
                    )
                _check_size(dataset.video, frame.width, frame.height)  # a stream may change size
                name = frame_name(dataset.name, count - 1)
                if wanted is not None and name not in wanted:
                    continue
                pending.append(encoders.submit(_write_jpeg, frame, frames_dir / name))
                written += 1
                if len(pending) >= 4 * ENCODER_THREADS:
                    pending.popleft().result()
            for job in pending:
                job.result()
    except av.error.FFmpegError as exc:
        raise PipelineError(f"cannot read {dataset.video}: {exc}".splitlines()[0]) from exc
    finally:
        encoders.shutdown(cancel_futures=True)  # after a failure, the frames queued are not tried
    if count == 0:
        raise PipelineError(f"{dataset.video} holds no video frames")
    log.info("%s: %d of its %d frames extracted", dataset.name, written, count)
    return written


def _check_size(video: Path, width: int, height: int) -> None:
    if width * height > MAX_FRAME_PIXELS:
        raise PipelineError(
            f"{video} has {width}x{height} frames, over the {MAX_FRAME_PIXELS / 1e6:.0f} MP limit (8K UHD)"
        )


def upright(frame: av.VideoFrame) -> Image.Image:
    """The frame as OpenCV returns it: turned clockwise as its display matrix says, by quarter turns."""
    image = frame.to_image()
    turn = CLOCKWISE.get(-frame.rotation % 360)
    return image if turn is None else image.transpose(turn)


def _write_jpeg(frame: av.VideoFrame, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        upright(frame).save(tmp, format="JPEG", quality=JPEG_QUALITY)
        os.replace(tmp, target)
    except OSError as exc:
        raise PipelineError(f"cannot write frames to {target.parent}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def extract_all_frames(
    datasets: tuple[Dataset, ...], frames_dir: Path, wanted: Collection[str] | None = None
) -> None:
    for dataset in datasets:
        extract_frames(dataset, frames_dir, wanted)
