"""run.py end to end on the CPU, with the nerfstudio CLIs and the renderer replaced by stand-ins."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import run
from pipeline import layout

STAGES = ["extract_frames", "process_data", "train", "export", "rotate", "convert", "preview"]
TOOLS = ["ns-process-data", "ns-train", "ns-export"]
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


def is_running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent that will never reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def outlived_the_kill(pid: int) -> bool:
    """Still running a moment after SIGKILL (dying takes the kernel a few milliseconds)."""
    deadline = time.monotonic() + 2
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return is_running(pid)


def test_a_job_runs_the_steps_in_order_and_reports_progress(job_root, run_job, fake_tools, fake_preview):
    preview_call = fake_preview("ok")

    result = run_job("--train-iterations", "5")

    assert result.status == 0, result.stderr
    assert fake_tools.tools_called() == TOOLS
    assert result.stages() == [*STAGES, "done"]
    percents = [int(line.rsplit("pct=", 1)[1]) for line in result.progress()]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100
    expected = [f"[PROGRESS] stage={s} pct={p}" for s, p in zip([*STAGES, "done"], percents, strict=True)]
    assert result.progress() == expected
    for path in (layout.SPLAT_PLY, layout.ROTATED_PLY, layout.SPLAT_FILE, layout.PREVIEW, layout.POSTER):
        assert (job_root / path).is_file(), path
    assert (job_root / layout.SPLAT_FILE).stat().st_size == 32 * 2000
    assert len(list((job_root / layout.FRAMES).glob("*.jpg"))) == 5
    assert json.loads(preview_call.read_text()) == {
        "--config": str(job_root / layout.CONFIG),
        "--ply": str(job_root / layout.SPLAT_PLY),
        "--output": str(job_root / layout.PREVIEW),
        "--poster": str(job_root / layout.POSTER),
    }


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
    assert calls["ns-export"]["no_weights_only"] == "1"  # nerfstudio checkpoints need it with torch >= 2.6
    assert calls["ns-export"]["argv"] == [
        "gaussian-splat",
        *("--load-config", "refined/splatter/splatfacto/config.yml", "--output-dir", "refined/splatter"),
    ]


def test_a_second_run_skips_every_finished_step(run_job, fake_tools, fake_preview):
    fake_preview("ok")
    assert run_job().status == 0
    calls = fake_tools.calls()

    again = run_job()

    assert again.status == 0
    assert fake_tools.calls() == calls
    assert again.stages() == [*STAGES, "done"]
    assert again.stdout.count("already done, skipped") == len(STAGES)


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
    assert fake_tools.tools_called() == ["ns-process-data", "ns-train", "ns-train", "ns-export"]


def test_another_training_budget_retrains(run_job, fake_tools, fake_preview):
    fake_preview("ok")
    assert run_job("--train-iterations", "5").status == 0
    assert run_job("--train-iterations", "50").status == 0
    assert fake_tools.tools_called() == TOOLS + ["ns-train", "ns-export"]


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


def test_a_hanging_preview_is_killed_with_its_children(run_job, fake_tools, fake_preview):
    preview_call = fake_preview("hang")

    result = run_job("--preview-timeout", "1")

    assert result.status == 0, result.stderr
    assert "did not finish within 1 s" in result.stdout
    assert not any(outlived_the_kill(pid) for pid in json.loads(preview_call.read_text())["pids"])


def test_a_failed_preview_is_retried_on_the_next_run(job_root, run_job, fake_tools, fake_preview):
    fake_preview("crash")
    assert run_job().status == 0
    fake_preview("ok")
    assert run_job().status == 0
    assert (job_root / layout.PREVIEW).is_file()
    assert fake_tools.tools_called() == TOOLS


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


def test_frames_that_do_not_match_images_bin_fail_before_nerfstudio_runs(job_root, run_job, fake_tools):
    (job_root / layout.DATASETS / "scan1").rename(job_root / layout.DATASETS / "other")
    result = run_job()
    assert result.status == 1
    assert (
        "3 of 5 images in images.bin are not among the extracted frames (first missing: scan1_000000.jpg"
        in (result.stderr)
    )
    assert fake_tools.calls() == []


def test_a_step_whose_output_did_not_appear_fails_the_job(run_job, fake_tools):
    fake_tools.set_mode("ns-export", "silent")
    result = run_job()
    assert result.status == 1
    assert "export failed: expected output refined/splatter/splat.ply did not appear" in result.stderr
    assert result.stages()[-1] == "export"


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
