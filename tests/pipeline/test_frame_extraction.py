from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.frames import Dataset, extract_frames, frame_name


def test_every_frame_becomes_a_jpeg_named_by_dataset_and_0_based_index(tmp_path: Path, video_writer):
    video = tmp_path / "datasets" / "scan1" / "Frames.mp4"
    originals = video_writer(video, frames=5, size=(64, 48))

    count = extract_frames(Dataset("scan1", video), tmp_path / "Frames")

    assert count == 5
    names = sorted(p.name for p in (tmp_path / "Frames").iterdir())
    assert names == [f"scan1_00000{i}.jpg" for i in range(5)] == [frame_name("scan1", i) for i in range(5)]
    for name, original in zip(names, originals, strict=True):
        with Image.open(tmp_path / "Frames" / name) as image:
            assert image.format == "JPEG" and image.size == (64, 48)
            pixels = np.asarray(image.convert("RGB"), dtype=float)
        assert np.abs(pixels.mean(axis=(0, 1)) - original[0, 0]).max() < 8  # the frame, in decode order


def test_frames_of_several_datasets_share_the_folder(tmp_path: Path, video_writer):
    for name, frames in (("a", 2), ("b", 3)):
        video_writer(tmp_path / name / "Frames.mp4", frames)
        extract_frames(Dataset(name, tmp_path / name / "Frames.mp4"), tmp_path / "Frames")
    assert sorted(p.name for p in (tmp_path / "Frames").iterdir()) == [
        "a_000000.jpg", "a_000001.jpg", "b_000000.jpg", "b_000001.jpg", "b_000002.jpg"
    ]  # fmt: skip


def test_an_unreadable_video_is_a_one_line_error(tmp_path: Path):
    video = tmp_path / "Frames.mp4"
    video.write_bytes(b"this is no mp4" * 100)
    with pytest.raises(PipelineError, match="cannot read .*Frames.mp4") as caught:
        extract_frames(Dataset("scan1", video), tmp_path / "Frames")
    assert "\n" not in str(caught.value)
