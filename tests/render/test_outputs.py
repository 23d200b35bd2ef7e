"""A preview's outputs: checked before any work, published together or not at all, OS errors in one line."""

from __future__ import annotations

import contextlib
import errno
import resource
import signal
from pathlib import Path

import pytest
import torch

from splat_render import outputs
from splat_render.cli import main
from splat_render.encode import EncoderSpec, encode_frames
from splat_render.errors import PreviewInputError
from splat_render.orbit import PathSpec
from splat_render.outputs import published_together
from splat_render.ply import read_gaussians, write_gaussians
from splat_render.preview import PreviewSpec, render_preview

TINY = ["--resolution", "64x36", "--frames", "90", "--quiet"]
OLD_VIDEO = b"old video"
TINY_PATH = PathSpec(frames=90, width=64, height=36)


@pytest.fixture(scope="module")
def small_ply(synthetic_run, tmp_path_factory) -> Path:
    """Every tenth gaussian of the synthetic scene: plans in a blink."""
    gaussians = read_gaussians(synthetic_run.ply)
    path = tmp_path_factory.mktemp("small") / "splat.ply"
    write_gaussians(path, gaussians.select(torch.arange(0, len(gaussians), 10)))
    return path


@pytest.fixture
def quick_frames(monkeypatch):
    """Noise instead of the CPU reference's frames: these tests are about files, not pixels."""

    def noise(gaussians, settings, path, device, batch_size=None):
        generator = torch.Generator().manual_seed(0)
        for start in range(0, path.frames, 30):
            yield torch.rand((min(30, path.frames - start), path.height, path.width, 3), generator=generator)

    monkeypatch.setattr("splat_render.preview.render_path", noise)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """The output folder, holding the video of an earlier preview, which a failure must not touch."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "preview.mp4").write_bytes(OLD_VIDEO)
    return folder


def assert_untouched(folder: Path, *made: str) -> None:
    """Only the old video is there, as it was (and the folders ``made`` by the test)."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(["preview.mp4", *made])
    assert (folder / "preview.mp4").read_bytes() == OLD_VIDEO


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@contextlib.contextmanager
def file_size_limit(size: int):
    """Writes beyond ``size`` bytes fail with EFBIG, as a full disk fails them with ENOSPC."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("output_is_a_folder", "old: it is a folder"),
        ("poster_is_a_folder", "poster.jpg: it is a folder"),
        ("camera_path_in_a_read_only_folder", "cannot write /proc/path.json: "),
        ("two_outputs_one_file", "name the same file"),
        ("bad_preset", "x264 preset must be one of"),
        ("encoder_that_cannot_open", "cannot open video encoder mjpeg"),
        ("unknown_device", "--device must be auto, cuda, cuda:N or cpu, got tpu"),
    ],
)
@pytest.mark.parametrize("standby", [False, True], ids=["now", "standby"])
def test_output_and_encoder_problems_fail_before_any_work(
    small_ply, out_dir, capsys, monkeypatch, case, message, standby
):
    def no_work(*args, **kwargs):
        raise AssertionError("the problem was found only after work began")

    monkeypatch.setattr("splat_render.preview.load_scene", no_work)
    monkeypatch.setattr("splat_render.standby.stand_by", no_work)
    output = out_dir / ("old" if case == "output_is_a_folder" else "preview.mp4")
    same_file = f"{out_dir}/../{out_dir.name}/a.png"
    extra = {
        "output_is_a_folder": [],
        "poster_is_a_folder": ["--poster", str(out_dir / "poster.jpg")],
        "camera_path_in_a_read_only_folder": ["--camera-path-out", "/proc/path.json"],
        "two_outputs_one_file": ["--poster", str(out_dir / "a.png"), "--contact-sheet", same_file],
        "bad_preset": ["--preset", "sideways"],
        "encoder_that_cannot_open": ["--codec", "mjpeg"],
        "unknown_device": ["--device", "tpu"],
    }[case]
    made = {"output_is_a_folder": ["old"], "poster_is_a_folder": ["poster.jpg"]}.get(case, [])
    for folder in made:
        (out_dir / folder).mkdir()
    if case == "camera_path_in_a_read_only_folder" and not Path("/proc/self").is_dir():
        pytest.skip("needs a procfs to refuse the write")

    standing_by = ["--standby"] if standby else []
    code = main(["preview", "--ply", str(small_ply), "--output", str(output), *TINY, *extra, *standing_by])

    assert code == 2
    assert message in one_error_line(capsys)
    assert_untouched(out_dir, *made)


def test_a_poster_that_fails_after_rendering_leaves_no_video_or_camera_path(
    small_ply, out_dir, capsys, monkeypatch, quick_frames
):
    """The disk fills up as the poster is written: none of the new files appear, the old video stays."""
    from PIL import Image

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    stills = ["--poster", str(out_dir / "poster.jpg"), "--camera-path-out", str(out_dir / "path.json")]
    code = main(["preview", "--ply", str(small_ply), "-o", str(out_dir / "preview.mp4"), *TINY, *stills])

    assert code == 2
    assert one_error_line(capsys) == (
        f"splat-render: error: cannot write {out_dir / 'poster.jpg'}: No space left on device"
    )
    assert_untouched(out_dir)


def test_a_full_disk_while_encoding_is_one_line_and_leaves_nothing(small_ply, out_dir, capsys, quick_frames):
    stills = ["--contact-sheet", str(out_dir / "sheet.png"), "--camera-path-out", str(out_dir / "path.json")]
    command = ["preview", "--ply", str(small_ply), "--output", str(out_dir / "preview.mp4"), *TINY, *stills]
    with file_size_limit(100_000):  # the camera path fits, the lossless video of noise does not
        code = main([*command, "--crf", "0"])

    assert code == 2
    assert one_error_line(capsys).endswith(f"cannot write {out_dir / 'preview.mp4'}: File too large")
    assert_untouched(out_dir)


def test_everything_is_published_together(small_ply, out_dir, quick_frames):
    stills = PreviewSpec(
        path=TINY_PATH,
        encoder=EncoderSpec(preset="ultrafast"),
        poster=out_dir / "poster.jpg",
        contact_sheet=out_dir / "sheet.png",
        camera_path_out=out_dir / "path.json",
    )
    report = render_preview(None, out_dir / "preview.mp4", stills, ply=small_ply)

    assert report.output == out_dir / "preview.mp4" and report.stills == (stills.poster, stills.contact_sheet)
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["path.json", "poster.jpg", "preview.mp4", "sheet.png"]
    assert (out_dir / "preview.mp4").read_bytes()[4:8] == b"ftyp"


def test_an_interrupted_preview_leaves_nothing(small_ply, out_dir, quick_frames):
    spec = PreviewSpec(TINY_PATH, poster=out_dir / "poster.jpg", camera_path_out=out_dir / "path.json")

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_preview(None, out_dir / "preview.mp4", spec, ply=small_ply, on_frames=interrupt)
    assert_untouched(out_dir)


def test_a_failing_cleanup_does_not_hide_the_error(tmp_path, monkeypatch):
    """On a read-only mount even removing a missing temp file fails; the user hears of the write."""

    def read_only(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "unlink", read_only)
    spec = EncoderSpec(preset="ultrafast")
    with pytest.raises(PreviewInputError, match="cannot write /proc/preview.mp4: "):
        encode_frames([], Path("/proc/preview.mp4"), 64, 64, spec)
    target = tmp_path / "a.json"
    with (
        pytest.raises(PreviewInputError, match=f"cannot write {target}: No space left on device"),
        published_together([target]),
    ):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_missing_folder_may_appear_while_standing_by(tmp_path):
    """The run being trained makes its folder later: only a folder that exists is checked now."""
    later = tmp_path / "not-yet" / "preview.mp4"
    outputs.check_writable([later], folders_may_appear=True)
    with pytest.raises(PreviewInputError, match="output folder does not exist"):
        outputs.check_writable([later])
