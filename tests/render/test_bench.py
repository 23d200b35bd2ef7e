"""The benchmark's pure parts: the table and the environment it gives ns-render."""

from __future__ import annotations

import subprocess
import sys

from splat_render.bench import RunResult, baseline_environment, format_table


def run(**overrides) -> RunResult:
    stages = {
        "checkpoint_load": 0.5,
        "analysis_and_camera_path": 0.1,
        "rasterize": 1.0,
        "device_to_host": 0.2,
        "encode_floor": 2.0,
        "pipelined_render_transfer_encode": 2.1,
    }
    fields = dict(
        scene="1.5M", gaussians=1_500_000, resolution="1080p", frames=300, device="cuda", stages=stages
    )
    return RunResult(**{**fields, **overrides})


def test_table_has_one_row_per_run_with_ratio_and_speed_up():
    rows = format_table(
        [run(end_to_end_s=10.0, baseline={"total_s": 150.0}, psnr_vs_ns_render_db=60.0), run(frames=150)],
        "H100",
        4.0,
    ).splitlines()
    assert rows[0].startswith("device: H100") and "4.00 s" in rows[0]
    header = [c.strip() for c in rows[1].strip("|").split("|")]
    first = dict(zip(header, (c.strip() for c in rows[3].strip("|").split("|")), strict=True))
    assert first["/floor"] == "1.05" and first["speed-up"] == "15.0x" and first["PSNR dB"] == "60.00"
    assert first["plan s"] == "0.10"
    second = dict(zip(header, (c.strip() for c in rows[4].strip("|").split("|")), strict=True))
    assert second["frames"] == "150" and second["baseline s"] == "-" and second["speed-up"] == "-"


def test_baseline_environment_patches_nerfstudio_at_start_up(tmp_path):
    env = baseline_environment(tmp_path)
    check = (
        "import torch, torchmetrics.image.lpip as l\n"
        "print(l.LearnedPerceptualImagePatchSimilarity.__name__, torch.load.__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", check], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-1000:]
    assert done.stdout.split() == ["_NoLPIPS", "load_checkpoint"]  # the allow-listing loader
