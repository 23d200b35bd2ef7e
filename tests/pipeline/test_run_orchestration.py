"""run.py end to end on the CPU, with the nerfstudio CLIs and the renderer replaced by stand-ins."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shlex
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from processes import outlived_the_kill

import pipeline.job
import run
from pipeline import layout
from pipeline.errors import PipelineError
from pipeline.inputs import colmap_image_names
from pipeline.preview import DEFAULT_RENDERER, PreviewRenderer
from splat_render.errors import PreviewInputError

STAGES = ["extract_frames", "process_data", "train", "preview", "export", "rotate", "sog", "convert"]
TOOLS = ["ns-process-data", "ns-train"]
# The preview's (5) and the SOG's (2) shares count once the job has waited for them, at the end.
PERCENT_AT_START = [0, 5, 10, 85, 85, 90, 92, 92, 100]
REPO = Path(run.__file__).resolve().parent


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str

    def progress(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("[PROGRESS]")]

    def stages(self) -> list[str]:
        return [line.split()[1].removeprefix("stage=") for line in self.progress()]


@pytest.fixture
def run_job(job_root: Path, capsys: pytest.CaptureFixture):
    def run_job(*options: str, root: Path = job_root) -> Result:
        status = run.main(["--job_root_path", str(root), *options])
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run_job


def export_after_the_go_ahead(go_aheads: Callable[[], list], monkeypatch: pytest.MonkeyPatch) -> None:
    """Export holds until the preview has recorded a go-ahead (or 30 s): a go-ahead sent only after
    export would then find splat.ply written, however fast or slow the machine is."""
    export_splat = pipeline.job.export_splat

    def export(*args, **kwargs):
        deadline = time.monotonic() + 30
        while not go_aheads() and time.monotonic() < deadline:
            time.sleep(0.02)
        return export_splat(*args, **kwargs)

    monkeypatch.setattr(pipeline.job, "export_splat", export)


def test_a_job_runs_the_steps_in_order_and_reports_progress(
    job_root, run_job, fake_tools, fake_preview, monkeypatch
):
    preview = fake_preview("ok")
    export_after_the_go_ahead(preview.calls, monkeypatch)

    result = run_job("--train-iterations", "5")

    assert result.status == 0, result.stderr
    assert fake_tools.tools_called() == TOOLS
    expected = [
        f"[PROGRESS] stage={s} pct={p}" for s, p in zip([*STAGES, "done"], PERCENT_AT_START, strict=True)
    ]
    assert result.progress() == expected
    for path in (layout.SPLAT_PLY, layout.ROTATED_PLY, layout.SPLAT_FILE, layout.PREVIEW, layout.POSTER):
        assert (job_root / path).is_file(), path
    assert (job_root / layout.QUALITY).is_file() and (job_root / layout.COVERAGE).is_file()
    assert (job_root / layout.SPLAT_FILE).stat().st_size == 32 * 2000
    with zipfile.ZipFile(job_root / layout.SOG_FILE) as sog:
        meta = json.loads(sog.read("meta.json"))
    assert meta["count"] == 2000 and meta["shN"]["bands"] == 3
    assert len(list((job_root / layout.FRAMES).glob("*.jpg"))) == 5
    assert preview.calls() == [
        {
            "options": {
                "--config": str(job_root / layout.CONFIG),
                "--output": str(job_root / layout.PREVIEW),
                "--poster": str(job_root / layout.POSTER),
                "--quality-out": str(job_root / layout.QUALITY),
                "--coverage-out": str(job_root / layout.COVERAGE),
            },
            "standby": True,
            "splat.ply at go-ahead": False,  # told to render as soon as training ended
        }
    ]


def test_the_renderer_imports_while_training_runs_and_renders_beside_the_export(
    job_root, run_job, fake_tools, fake_preview
):
    preview = fake_preview("beside")
    # Training finishes only once the renderer has started: it started with training, not after.
    fake_tools.await_file("ns-train", preview.pid_file)

    result = run_job()

    assert result.status == 0, result.stderr
    # The renderer was still busy when convert, the job's last other step, wrote splat_rot.splat.
    assert preview.calls()[0]["splat_rot.splat seen"] is True
    assert (job_root / layout.PREVIEW).is_file()
    assert result.stages() == [*STAGES, "done"]


def test_the_nerfstudio_tools_get_the_pipeline_flags_from_the_job_root(
    job_root, run_job, fake_tools, fake_preview
):
    fake_preview("ok")
    assert run_job("--train-iterations", "5").status == 0
    calls = {call["tool"]: call for call in fake_tools.calls()}
    assert {call["cwd"] for call in calls.values()} == {str(job_root)}
    process = calls["ns-process-data"]["argv"]
    assert process[:5] == ["images", "--data", "Frames", "--output-dir", "refined/nerfstudio-data"]
    assert process[process.index("--colmap-model-path") + 1] == "../global/refined_sfm_combined"
    train = calls["ns-train"]["argv"]
    assert train[0] == "splatfacto"
    assert train[train.index("--max-num-iterations") + 1] == "5"
    assert train[train.index("nerfstudio-data") :] == [
        "nerfstudio-data",
        *("--center-method", "none", "--orientation-method", "none", "--auto-scale-poses", "False"),
    ]


def test_a_second_run_skips_every_finished_step(job_root, run_job, fake_tools, fake_preview):
    preview = fake_preview("ok")
    assert run_job().status == 0
    calls, splat = fake_tools.calls(), (job_root / layout.SPLAT_PLY).stat().st_mtime_ns

    again = run_job()

    assert again.status == 0
    assert fake_tools.calls() == calls
    assert len(preview.calls()) == 1
    assert (job_root / layout.SPLAT_PLY).stat().st_mtime_ns == splat
    assert again.stages() == [*STAGES, "done"]
    assert again.stdout.count("already done, skipped") == len(STAGES)


def test_a_lost_ply_is_exported_again_without_rendering_again(job_root, run_job, fake_tools, fake_preview):
    preview = fake_preview("ok")
    assert run_job().status == 0
    (job_root / layout.SPLAT_PLY).unlink()

    again = run_job()

    assert again.status == 0
    skipped = {line.split()[3].rstrip(":") for line in again.stdout.splitlines() if "already done" in line}
    assert skipped == {"extract_frames", "process_data", "train", "preview"}
    assert len(preview.calls()) == 1 and fake_tools.tools_called() == TOOLS
    assert (job_root / layout.SPLAT_PLY).is_file() and (job_root / layout.SPLAT_FILE).is_file()


def test_force_redoes_everything(run_job, fake_tools, fake_preview):
    fake_preview("ok")
    assert run_job().status == 0
    assert run_job("--force").status == 0
    assert fake_tools.tools_called() == TOOLS + TOOLS


def test_a_step_cut_short_is_redone_with_everything_after_it(job_root, run_job, fake_tools, fake_preview):
    fake_preview("ok")
    fake_tools.set_mode("ns-train", "fail")  # leaves config.yml and a checkpoint, then fails
    failed = run_job()
    assert failed.status == 1
    assert (job_root / layout.CONFIG).is_file()

    fake_tools.set_mode("ns-train", "ok")
    assert run_job().status == 0
    assert fake_tools.tools_called() == ["ns-process-data", "ns-train", "ns-train"]


def test_a_step_missing_one_of_its_outputs_is_redone(job_root, run_job, fake_tools, fake_preview):
    """A frame lost after extraction (say, by a crashed twin's cleanup) undoes the step, instead of every
    later run failing on the missing frame."""
    fake_preview("ok")
    fake_tools.set_mode("ns-process-data", "fail")
    assert run_job().status == 1  # frames extracted and marked done; process_data failed
    (job_root / layout.FRAMES / "scan1_000001.jpg").unlink()
    fake_tools.set_mode("ns-process-data", "ok")

    again = run_job()

    assert again.status == 0, again.stderr
    assert "extract_frames: already done" not in again.stdout
    assert (job_root / layout.FRAMES / "scan1_000001.jpg").is_file()


def test_only_the_frames_images_bin_names_are_extracted_and_a_new_model_extracts_again(
    job_root, run_job, fake_tools, fake_preview, colmap_writer
):
    """A recording holds many more frames than its reconstruction registered: only the registered
    ones are written (ns-process-data copies and downscales every frame it finds). Another model
    names other frames, so the step is redone."""
    fake_preview("ok")
    colmap_writer(job_root / layout.COLMAP_MODEL, ["scan1_000002.jpg", "scan2_000001.jpg"])
    assert run_job().status == 0
    assert sorted(p.name for p in (job_root / layout.FRAMES).iterdir()) == [
        "scan1_000002.jpg",
        "scan2_000001.jpg",
    ]

    colmap_writer(job_root / layout.COLMAP_MODEL, ["scan1_000000.jpg", "scan1_000002.jpg"])
    again = run_job()

    assert again.status == 0, again.stderr
    assert "extract_frames: already done" not in again.stdout
    assert {"scan1_000000.jpg", "scan1_000002.jpg"} <= {p.name for p in (job_root / layout.FRAMES).iterdir()}


def test_a_truncated_output_is_written_again(job_root, run_job, fake_tools, fake_preview):
    fake_preview("ok")
    assert run_job().status == 0
    splat = job_root / layout.SPLAT_FILE
    whole = splat.read_bytes()
    splat.write_bytes(whole[: len(whole) // 2])

    again = run_job()

    assert again.status == 0, again.stderr
    assert "convert: already done" not in again.stdout and "rotate: already done" in again.stdout
    assert splat.read_bytes() == whole


def test_a_failed_sog_leaves_a_successful_job_and_is_retried_alone(
    job_root, run_job, fake_tools, fake_preview, monkeypatch
):
    fake_preview("ok")

    def broken(ply, output, device="auto"):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr("pipeline.sog.write_sog", broken)
    failed = run_job()
    assert failed.status == 0, failed.stderr
    assert "sog failed, the job goes on without it: RuntimeError: CUDA error" in failed.stdout
    assert not (job_root / layout.SOG_FILE).exists() and (job_root / layout.SPLAT_FILE).is_file()
    assert not list((job_root / layout.SPLATTER).glob(".*tmp*"))

    monkeypatch.undo()
    again = run_job()

    assert again.status == 0, again.stderr
    assert again.stdout.count("already done, skipped") == len(STAGES) - 1
    assert "sog: already done" not in again.stdout
    assert zipfile.ZipFile(job_root / layout.SOG_FILE).testzip() is None


def test_a_truncated_sog_is_written_again_alone(job_root, run_job, fake_tools, fake_preview):
    fake_preview("ok")
    assert run_job().status == 0
    sog = job_root / layout.SOG_FILE
    whole = sog.read_bytes()
    sog.write_bytes(whole[: len(whole) // 2])

    again = run_job()

    assert again.status == 0, again.stderr
    assert again.stdout.count("already done, skipped") == len(STAGES) - 1
    assert "sog: already done" not in again.stdout
    assert sog.read_bytes() == whole  # the same bytes: the encoding is deterministic


def test_another_training_budget_retrains(run_job, fake_tools, fake_preview):
    fake_preview("ok")
    assert run_job("--train-iterations", "5").status == 0
    assert run_job("--train-iterations", "50").status == 0
    assert fake_tools.tools_called() == TOOLS + ["ns-train"]


def test_a_crashing_preview_leaves_a_successful_job(job_root, run_job, fake_tools, fake_preview):
    fake_preview("crash")
    stale = job_root / layout.PREVIEW
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an old job's video")

    result = run_job()

    assert result.status == 0, result.stderr
    assert (job_root / layout.SPLAT_FILE).is_file()
    assert not stale.exists()
    assert "preview failed, the job goes on without it" in result.stdout
    assert "CUDA error: out of memory" in result.stdout
    assert result.stages()[-1] == "done"


def test_a_preview_without_its_report_is_done_and_not_rendered_again(
    job_root, run_job, fake_tools, fake_preview
):
    preview = fake_preview("no-report")
    assert run_job().status == 0
    assert (job_root / layout.PREVIEW).is_file() and not (job_root / layout.QUALITY).exists()

    again = run_job()

    assert again.status == 0 and len(preview.calls()) == 1
    assert again.stdout.count("already done, skipped") == len(STAGES)


def test_a_renderer_that_dies_in_standby_leaves_a_successful_job(job_root, run_job, fake_tools, fake_preview):
    fake_preview("crash-in-standby")

    result = run_job()

    assert result.status == 0, result.stderr
    assert (job_root / layout.SPLAT_FILE).is_file()
    assert "preview failed, the job goes on without it" in result.stdout
    assert "RuntimeError: no CUDA driver" in result.stdout


def test_a_hanging_preview_is_killed_with_its_children(run_job, fake_tools, fake_preview):
    preview = fake_preview("hang")

    result = run_job("--preview-timeout", "1")

    assert result.status == 0, result.stderr
    assert "did not finish within 1 s" in result.stdout
    assert not any(outlived_the_kill(pid) for pid in preview.calls()[0]["pids"])


def test_a_failed_training_leaves_no_renderer_behind(run_job, fake_tools, fake_preview):
    preview = fake_preview("ok")
    fake_tools.await_file("ns-train", preview.pid_file)  # fails once the renderer stands by
    fake_tools.set_mode("ns-train", "fail")

    result = run_job()

    assert result.status == 1
    assert not outlived_the_kill(preview.pid())
    assert preview.calls() == []


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGKILL])
def test_a_job_cancelled_in_training_leaves_no_renderer_behind(
    job_root, fake_tools, fake_preview, signal_number
):
    """SIGTERM (the runner's cancel) unwinds run.py, which kills the training's and the renderer's
    groups; after a SIGKILL nothing unwinds, and the kernel kills both, as their launcher asked."""
    preview = fake_preview("ok")
    fake_tools.await_file("ns-train", preview.pid_file)
    fake_tools.set_mode("ns-train", "hang")
    job = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "--job_root_path", str(job_root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while "ns-train" not in fake_tools.tools_called() or not preview.pid_file.exists():
            assert time.monotonic() < deadline and job.poll() is None, "training never started"
            time.sleep(0.05)
        job.send_signal(signal_number)
        assert job.wait(timeout=30) != 0
        train = next(call for call in fake_tools.calls() if call["tool"] == "ns-train")
        assert not outlived_the_kill(train["pid"])
        assert not outlived_the_kill(preview.pid())
        assert preview.calls() == []
    finally:
        job.kill()
        for call in fake_tools.calls():  # whatever a failed assertion left running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(call["pid"], signal.SIGKILL)


def test_a_failed_preview_is_retried_on_the_next_run(
    job_root, run_job, fake_tools, fake_preview, monkeypatch
):
    export_after_the_go_ahead(fake_preview("crash").calls, monkeypatch)
    assert run_job().status == 0
    splat = (job_root / layout.SPLAT_PLY).stat().st_mtime_ns
    preview = fake_preview("ok")

    again = run_job()

    assert again.status == 0
    assert (job_root / layout.PREVIEW).is_file()
    assert fake_tools.tools_called() == TOOLS
    assert again.stdout.count("already done, skipped") == len(STAGES) - 1
    assert (job_root / layout.SPLAT_PLY).stat().st_mtime_ns == splat
    # The crashed render came with training's end, the retry alone, beside the finished files.
    assert [call["splat.ply at go-ahead"] for call in preview.calls()] == [False, True]


def test_no_datasets_fails_fast(job_root, run_job, fake_tools):
    for dataset in (job_root / layout.DATASETS).iterdir():
        (dataset / layout.DATASET_VIDEO).unlink()
        dataset.rmdir()
    result = run_job()
    assert result.status == 1
    assert "no datasets" in result.stderr
    assert result.progress() == [] and fake_tools.calls() == []


def test_missing_colmap_files_fail_fast(job_root, run_job, fake_tools):
    (job_root / layout.COLMAP_MODEL / "points3D.bin").unlink()
    (job_root / layout.COLMAP_MODEL / "cameras.bin").unlink()
    result = run_job()
    assert result.status == 1
    assert (
        "missing COLMAP files in refined/global/refined_sfm_combined/: cameras.bin, points3D.bin"
        in result.stderr
    )
    assert result.progress() == []


def test_an_unreadable_video_fails_the_job(job_root, run_job, fake_tools):
    (job_root / layout.DATASETS / "scan2" / layout.DATASET_VIDEO).write_bytes(b"\x00" * 1000)
    result = run_job()
    assert result.status == 1
    assert "extract_frames failed: cannot read" in result.stderr and "scan2" in result.stderr
    assert fake_tools.calls() == []


def test_a_full_disk_in_frame_extraction_fails_the_job_on_one_line(run_job, fake_tools, disk_full_after):
    disk_full_after(2)
    result = run_job()
    assert result.status == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "extract_frames failed: cannot write" in result.stderr
    assert "No space left on device" in result.stderr
    assert fake_tools.calls() == []


def test_frames_that_do_not_match_images_bin_fail_before_nerfstudio_runs(job_root, run_job, fake_tools):
    (job_root / layout.DATASETS / "scan1").rename(job_root / layout.DATASETS / "other")
    result = run_job()
    assert result.status == 1
    assert (
        "3 of 5 images in images.bin are not among the extracted frames (first missing: scan1_000000.jpg"
        in (result.stderr)
    )
    assert fake_tools.calls() == []


def test_a_corrupt_images_bin_fails_the_job_before_any_frame_is_decoded(job_root, run_job, fake_tools):
    images_bin = job_root / layout.COLMAP_MODEL / "images.bin"
    images_bin.write_bytes(images_bin.read_bytes()[:30])

    result = run_job()

    assert result.status == 1
    assert "cannot read refined/global/refined_sfm_combined/images.bin" in result.stderr
    assert result.stages() == [] and not (job_root / layout.FRAMES).exists()
    assert fake_tools.calls() == []


HUGE_COUNT = 2**40
"""A count no file of a test holds: nerfstudio's readers would ask for terabytes before reading."""
IMAGE_HEAD = struct.pack("<idddddddi", 1, 1.0, 0, 0, 0, 0, 0, 0, 1)  # id, quaternion, translation, camera


def images_bin(hostile_head: tuple[float, ...]) -> bytes:
    """An images.bin of a well-posed image, then one of hostile_head (id, quaternion, translation,
    camera), each with a name and no 2D points."""
    heads = (IMAGE_HEAD, struct.pack("<idddddddi", *hostile_head))
    return struct.pack("<Q", len(heads)) + b"".join(
        head + f"scan1_00000{n}.jpg".encode() + b"\0" + struct.pack("<Q", 0) for n, head in enumerate(heads)
    )


def points3d_bin(finite: int, hostile: tuple[float, ...]) -> bytes:
    """A points3D.bin of `finite` good points, then one at hostile (id, x, y, z), each with a track."""
    points = [(n, 0.0, 0.0, 2.0 + n) for n in range(1, finite + 1)] + [hostile]
    return struct.pack("<Q", len(points)) + b"".join(
        struct.pack("<QdddBBBd", *point, 200, 100, 50, 0.5) + struct.pack("<Q", 1) + struct.pack("<ii", 1, 0)
        for point in points
    )


HOSTILE_COLMAP = {
    "images-claiming-2D-points": (
        "images.bin",
        struct.pack("<Q", 1) + IMAGE_HEAD + b"scan1_000000.jpg\0" + struct.pack("<Q", HUGE_COUNT),
        f"it claims {HUGE_COUNT} 2D points of image 1 ({24 * HUGE_COUNT} bytes or more), but only 0 bytes "
        "are left",
    ),
    "points-claiming-a-track": (
        "points3D.bin",
        struct.pack("<Q", 1)
        + struct.pack("<QdddBBBd", 1, 0, 0, 2, 200, 100, 50, 0.5)
        + struct.pack("<Q", HUGE_COUNT),
        f"it claims {HUGE_COUNT} track elements of point 1 ({8 * HUGE_COUNT} bytes or more), but only 0 "
        "bytes are left",
    ),
    "images-counting-too-many": (
        "images.bin",
        struct.pack("<Q", HUGE_COUNT),
        f"it claims {HUGE_COUNT} images ({73 * HUGE_COUNT} bytes or more), but only 0 bytes are left",
    ),
    "camera-of-no-model": (
        "cameras.bin",
        struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, 99, 64, 48) + struct.pack("<4d", 50, 50, 32, 24),
        "camera 1 has model id 99, no COLMAP camera model",
    ),
    "camera-larger-than-a-frame": (
        "cameras.bin",
        struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, 1, 2**32, 2**32) + struct.pack("<4d", 50, 50, 32, 24),
        f"camera 1 is {2**32}x{2**32} pixels; frames are 1 to 33177600 pixels (8K UHD)",
    ),
    "camera-without-its-parameters": (
        "cameras.bin",
        struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, 1, 64, 48) + struct.pack("<2d", 50, 50),
        "it ends within the parameters of camera 1 (16 of 32 bytes left)",
    ),
    "image-translated-by-NaN": (
        "images.bin",
        images_bin((7, 1.0, 0, 0, 0, 0, math.nan, 0, 1)),
        "image 7's pose is not finite",
    ),
    "image-turned-by-infinity": (
        "images.bin",
        images_bin((7, 1.0, 0, -math.inf, 0, 0, 0, 0, 1)),
        "image 7's pose is not finite",
    ),
    "image-of-a-zero-quaternion": (
        "images.bin",
        images_bin((7, 0.0, 0, -0.0, 0, 0, 0, 1, 1)),
        "image 7's rotation quaternion is zero",
    ),
    "point-at-infinity": (
        "points3D.bin",
        points3d_bin(5, (12, 0.0, math.inf, 2)),
        "point 12's position is not finite",
    ),
    "point-at-NaN": (
        "points3D.bin",
        points3d_bin(5, (12, math.nan, 0, 2)),
        "point 12's position is not finite",
    ),
}


@pytest.mark.parametrize(("name", "content", "why"), HOSTILE_COLMAP.values(), ids=HOSTILE_COLMAP.keys())
def test_a_colmap_file_nerfstudio_cannot_use_fails_the_job_before_anything_reads_it(
    job_root, run_job, fake_tools, name, content, why
):
    """nerfstudio's readers allocate what a count says before reading: a few bytes could take the
    node's memory; a camera of no model or of absurd size would fail deep inside ns-process-data; a
    pose that is not finite or turns by no quaternion ruins the splat, and a point that is not finite
    stops training as it starts."""
    (job_root / layout.COLMAP_MODEL / name).write_bytes(content)

    result = run_job()

    assert result.status == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.strip().endswith(f"ERROR cannot read {layout.COLMAP_MODEL / name}: {why}")
    assert result.stages() == [] and not (job_root / layout.FRAMES).exists()
    assert fake_tools.calls() == []


def test_reading_images_bin_takes_the_memory_of_its_names_not_of_its_counts(job_root):
    images_bin = job_root / layout.COLMAP_MODEL / "images.bin"
    images_bin.write_bytes(
        struct.pack("<Q", 1) + IMAGE_HEAD + b"scan1_000000.jpg\0" + struct.pack("<Q", 10_000_000)
    )
    tracemalloc.start()
    try:
        with pytest.raises(PipelineError):
            colmap_image_names(job_root)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # nerfstudio's reader takes 1 GB for this file of 99 bytes


def test_an_images_bin_naming_paths_fails_the_job_before_any_frame_is_decoded(
    job_root, run_job, fake_tools, colmap_writer
):
    """ns-process-data opens what images.bin names: a path could reach any file of the job root."""
    colmap_writer(job_root / layout.COLMAP_MODEL, ["scan1_000000.jpg", "../datasets/scan1/Frames.mp4"])

    result = run_job()

    assert result.status == 1
    assert (
        "images.bin names 1 images that are no plain file names (first: '../datasets/scan1/Frames.mp4'); "
        "frames are named <dataset>_<NNNNNN>.jpg" in result.stderr
    )
    assert result.stages() == [] and fake_tools.calls() == []


def test_a_step_whose_output_did_not_appear_fails_the_job(run_job, fake_tools):
    fake_tools.set_mode("ns-process-data", "silent")
    result = run_job()
    assert result.status == 1
    assert (
        "process_data failed: expected output refined/nerfstudio-data/transforms.json did not appear"
        in result.stderr
    )
    assert result.stages()[-1] == "process_data"


def test_a_failed_export_fails_the_job_and_stops_the_renderer(run_job, fake_tools, fake_preview, monkeypatch):
    preview = fake_preview("hang")
    fake_tools.await_file("ns-train", preview.pid_file)  # the renderer is up when the export fails

    def unreadable(config, output):
        raise PreviewInputError(f"cannot load checkpoint of {config}: truncated")

    monkeypatch.setattr("pipeline.job.export_splat", unreadable)

    result = run_job()

    assert result.status == 1
    assert "export failed: cannot load checkpoint" in result.stderr
    assert result.stages()[-1] == "export"
    helpers = [pid for call in preview.calls() for pid in call["pids"]]
    assert not any(outlived_the_kill(pid) for pid in [preview.pid(), *helpers])
    assert "preview failed" not in result.stdout  # stopped with the job, not a failure of its own


def test_a_failing_tool_fails_the_job_naming_the_step(run_job, fake_tools):
    fake_tools.set_mode("ns-train", "fail")
    result = run_job()
    assert result.status == 1
    assert "train failed: ns-train exited with status 3: ns-train ran out of memory" in result.stderr


def test_a_missing_tool_fails_the_job_naming_it(job_root, run_job, fake_tools):
    (fake_tools.bin_dir / "ns-process-data").unlink()
    result = run_job()
    assert result.status == 1
    assert "process_data failed: cannot start ns-process-data" in result.stderr


def test_the_command_line_reports_errors_on_one_line(job_root):
    (job_root / layout.COLMAP_MODEL / "images.bin").unlink()
    done = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "--job_root_path", str(job_root)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.rstrip().endswith(
        "missing COLMAP files in refined/global/refined_sfm_combined/: images.bin"
    )


def test_the_real_renderer_stands_by_and_renders_the_finished_run(job_root, run_job, fake_tools, monkeypatch):
    small = ["--resolution", "64x36", "--frames", "90", "--quiet"]
    monkeypatch.setenv("SPLATTER_PREVIEW_CMD", shlex.join([*DEFAULT_RENDERER, *small]))

    result = run_job()

    assert result.status == 0, result.stderr
    assert "standing by: imports took" in result.stdout
    with av.open(str(job_root / layout.PREVIEW)) as video:
        stream = video.streams.video[0]
        assert (stream.width, stream.height, stream.frames) == (64, 36, 90)


def test_a_stopped_renderer_never_starts(job_root, fake_preview):
    """stop() may come from the job's thread while a stage's thread is about to start the renderer."""
    preview = fake_preview("ok")
    renderer = PreviewRenderer(job_root, tuple(shlex.split(os.environ["SPLATTER_PREVIEW_CMD"])), 10.0)
    renderer.stop()
    renderer.warm_up()
    with pytest.raises(PipelineError, match="the job ended before the preview started"):
        renderer.render()
    assert not preview.pid_file.exists()


def test_each_progress_line_is_written_whole(job_root, fake_tools, fake_preview, monkeypatch):
    """The renderer's output is logged from another thread while export, rotate and convert start:
    a progress line written in pieces could have a log line land inside it."""
    fake_preview("ok")
    writes: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return super().write(text)

    monkeypatch.setattr(sys, "stdout", Recorder())

    assert run.main(["--job_root_path", str(job_root)]) == 0

    progress = [text for text in writes if "[PROGRESS]" in text]
    assert progress == [
        f"[PROGRESS] stage={s} pct={p}\n" for s, p in zip([*STAGES, "done"], PERCENT_AT_START, strict=True)
    ]
