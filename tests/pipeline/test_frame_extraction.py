from pathlib import Path

import av
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


def rotated_video(path: Path, counterclockwise: int) -> None:
    """A 64×48 video of one frame, white in its top-left 16×16 corner, whose display matrix turns it
    ``counterclockwise`` degrees (a phone held upright records -90: shown turned clockwise)."""
    image = np.zeros((48, 64, 3), np.uint8)
    image[:16, :16] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(counterclockwise)
        container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def bright_corners(path: Path) -> set[str]:
    """The corners of a JPEG whose 8×8 pixels are mostly white."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    corners = {
        "top-left": pixels[:8, :8],
        "top-right": pixels[:8, -8:],
        "bottom-left": pixels[-8:, :8],
        "bottom-right": pixels[-8:, -8:],
    }
    return {name for name, block in corners.items() if block.mean() > 128}


@pytest.mark.parametrize(
    ("counterclockwise", "size", "corner"),
    [
        (0, (64, 48), "top-left"),
        (-90, (48, 64), "top-right"),  # turned clockwise, as OpenCV shows a phone's portrait video
        (90, (48, 64), "bottom-left"),
        (180, (64, 48), "bottom-right"),
    ],
)
def test_frames_are_turned_as_the_video_is_displayed(tmp_path: Path, counterclockwise, size, corner):
    video = tmp_path / "Frames.mp4"
    rotated_video(video, counterclockwise)

    extract_frames(Dataset("scan1", video), tmp_path / "Frames")

    frame = tmp_path / "Frames" / frame_name("scan1", 0)
    with Image.open(frame) as image:
        assert image.size == size
    assert bright_corners(frame) == {corner}


def test_a_full_disk_is_a_one_line_error_and_leaves_no_partial_frame(
    tmp_path: Path, video_writer, disk_full_after
):
    video = tmp_path / "Frames.mp4"
    video_writer(video, frames=12)
    disk_full_after(4)

    with pytest.raises(PipelineError, match="No space left on device") as caught:
        extract_frames(Dataset("scan1", video), tmp_path / "Frames")

    assert "\n" not in str(caught.value)
    left = sorted((tmp_path / "Frames").iterdir())
    assert all(path.suffix == ".jpg" for path in left), left  # no temporary file either
    for path in left:
        with Image.open(path) as image:
            image.load()  # whole JPEGs only


def test_a_recording_with_too_many_frames_fails_on_one_line_with_whole_frames_only(
    tmp_path: Path, video_writer, monkeypatch
):
    monkeypatch.setattr("pipeline.frames.MAX_FRAMES", 5)
    video = tmp_path / "Frames.mp4"
    video_writer(video, frames=12)

    with pytest.raises(PipelineError, match=r"holds more than 5 frames .*record the scan in shorter parts"):
        extract_frames(Dataset("scan1", video), tmp_path / "Frames")

    left = sorted((tmp_path / "Frames").iterdir())
    assert [path.name for path in left] == [frame_name("scan1", i) for i in range(len(left))]
    assert len(left) <= 5
    for path in left:
        with Image.open(path) as image:
            image.load()


def test_a_recording_with_oversized_frames_fails_before_writing_any(
    tmp_path: Path, video_writer, monkeypatch
):
    video = tmp_path / "Frames.mp4"
    video_writer(video, frames=3, size=(64, 48))
    monkeypatch.setattr("pipeline.frames.MAX_FRAME_PIXELS", 64 * 48 - 1)

    with pytest.raises(PipelineError, match=r"has 64x48 frames, over the 0 MP limit"):
        extract_frames(Dataset("scan1", video), tmp_path / "Frames")

    assert list((tmp_path / "Frames").iterdir()) == []


def test_only_the_frames_the_colmap_model_names_are_written(tmp_path: Path, video_writer):
    video = tmp_path / "Frames.mp4"
    images = video_writer(video, frames=6)
    wanted = {frame_name("scan1", 1), frame_name("scan1", 4), frame_name("scan2", 0)}

    written = extract_frames(Dataset("scan1", video), tmp_path / "Frames", wanted)

    assert written == 2
    assert sorted(p.name for p in (tmp_path / "Frames").iterdir()) == [frame_name("scan1", i) for i in (1, 4)]
    for i in (1, 4):  # the right frames, by their colour
        with Image.open(tmp_path / "Frames" / frame_name("scan1", i)) as image:
            assert np.abs(np.asarray(image, np.int16)[24, 32] - images[i][24, 32]).max() <= 12
