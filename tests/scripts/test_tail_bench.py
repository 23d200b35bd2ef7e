"""scripts/tail-bench end to end at a tiny size on the CPU: both tails run and are reported.

The scene has few, small training views and the preview the fewest frames it takes, at a tiny size:
on the CPU, the preview's analysis renders every training view, and the preview runs twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEPS_BEFORE = {"ns_export", "rotate", "convert", "preview", "wall"}
STEPS_AFTER = {
    "renderer_imports",
    "preview",
    "export",
    "rotate",
    "convert",
    "sog",
    "wall",
    "preview_delay",
    "report",
}
WARM_UP = "renderer_warm_up"  # the renderer's GPU warm-up in standby: none without CUDA


def test_the_tail_bench_times_both_tails(tmp_path):
    out = tmp_path / "bench"
    command = [
        sys.executable, str(REPO / "scripts" / "tail-bench"),
        "--sizes", "400",
        "--out", str(out),
        "--preview-options", "--resolution 64x36 --frames 90 --quiet",
        "--min-training-s", "0",
        "--views", "8",
        "--view-size", "64x48",
        "--images",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    [run] = report["runs"]
    assert (run["size"], run["gaussians"]) == ("400", 400)
    assert run["ns_export_bytes_equal"] is True
    assert set(run["before"]) == STEPS_BEFORE and set(run["after"]) == STEPS_AFTER | {WARM_UP}
    assert run["after"].pop(WARM_UP) is None
    assert all(seconds >= 0 for seconds in [*run["before"].values(), *run["after"].values()])
    quality = json.loads((out / "scenes" / "400" / "refined/splatter/quality.json").read_text())
    assert quality["quality"]["training"]["psnr"] > 30  # its images are its own renders (JPEG)
    assert (
        quality["quality"]["held_out_note"] == "the dataset has no held-out views"
    )  # 8 views: none held out
    assert run["after"]["wall"] >= run["after"]["preview"]  # the job waited for the preview
    rows = (out / "table.md").read_text().splitlines()
    assert rows[0].startswith("device: CPU") and rows[3].startswith("| 400 | ")
