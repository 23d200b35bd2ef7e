"""scripts/frames-bench at a tiny size: both extractions run, and the registered frames alone are fewer."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_frames_bench_extracts_every_frame_and_the_registered_ones():
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "frames-bench"),
            "--frames",
            "24",
            "--size",
            "160x96",
            "--every",
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = dict(re.findall(r"^\s*(every frame|registered \(\d+\)):.*?(\d+) JPEGs", done.stdout, re.MULTILINE))
    assert rows == {"every frame": "24", "registered (4)": "4"}
