"""Stands in for run.py in the runner tests.

FAKE_RUN_MODE picks the behaviour: ok (SOG, splat, preview video, poster, coverage picture and
quality.json, FAKE_QUALITY_FILE its text), no_sog, no_poster, no_report (neither coverage picture nor
quality.json), no_preview (neither video, poster nor report), no_splat, fail, hang (progress lines
until killed), hang_quietly (no output until killed). FAKE_SLEEP_SECS delays the start. fail ends with
the text of FAKE_FAILURE_FILE as its last line when that is set (a program printing what it found).
FAKE_ENV_FILE, when set, receives its environment as JSON. The splat it writes is a JSON report of
what it saw (its arguments, working directory, whether output is unbuffered, every input file's
sha256), padded to FAKE_SPLAT_BYTES, so tests can check the inputs the runner laid out by reading
back the upload."""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--domain_id", required=True)
parser.add_argument("--job_id", required=True)
parser.add_argument("--job_root_path", required=True)
parser.add_argument("--log_level", required=True)
args = parser.parse_args()
mode = os.environ.get("FAKE_RUN_MODE", "ok")
root = Path(args.job_root_path)


FAKE_QUALITY = {
    "schema": 1,
    "gaussians": 1000,
    "quality": {"held_out": {"views": 2, "psnr": 25.5, "per_view": [{"psnr": 25.0}, {"psnr": 26.0}]}},
    "coverage": {"well_seen": 0.8, "thin_regions": [{"where": "far, upper"}]},
}


def progress(stage: str, pct: int) -> None:
    print(f"[PROGRESS] stage={stage} pct={pct}", flush=True)


time.sleep(float(os.environ.get("FAKE_SLEEP_SECS", "0")))
if "FAKE_ENV_FILE" in os.environ:
    Path(os.environ["FAKE_ENV_FILE"]).write_text(json.dumps(dict(os.environ)))
if mode in ("hang", "hang_quietly"):
    # A grandchild that ignores SIGTERM: only a group-wide SIGKILL ends it.
    grandchild = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)",
        ]
    )
    Path(os.environ["FAKE_PID_FILE"]).write_text(json.dumps([os.getpid(), grandchild.pid]))
    if mode == "hang_quietly":  # as training does between log lines: a closed stdout goes unnoticed
        time.sleep(120)
    for pct in range(1000):
        progress("train", pct % 100)
        time.sleep(0.1)

for line in range(250):
    print(f"log line {line}")
progress("extract", 0)
progress("train", 20)
progress("train", 60)

if mode == "fail":
    failure_file = os.environ.get("FAKE_FAILURE_FILE")
    message = Path(failure_file).read_text() if failure_file else "CUDA out of memory"
    print(f"Traceback (most recent call last):\nRuntimeError: {message}", file=sys.stderr)
    sys.exit(3)

splatter = root / "refined" / "splatter"
splatter.mkdir(parents=True, exist_ok=True)
if mode != "no_splat":
    report = {
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "unbuffered": os.environ.get("PYTHONUNBUFFERED"),
        "files": {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_relative_to(splatter)
        },
    }
    data = json.dumps(report).encode()
    (splatter / "splat_rot.splat").write_bytes(data.ljust(int(os.environ.get("FAKE_SPLAT_BYTES", "0")), b" "))
if mode not in ("no_sog", "no_splat"):
    (splatter / "splat_rot.sog").write_bytes(b"PK\x03\x04 fake sog")
if mode not in ("no_preview", "no_splat"):
    (splatter / "preview.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom fake preview video")
if mode not in ("no_poster", "no_preview", "no_splat"):
    (splatter / "preview.jpg").write_bytes(b"\xff\xd8\xff\xe0 fake poster")
if mode not in ("no_report", "no_preview", "no_splat"):
    (splatter / "coverage.jpg").write_bytes(b"\xff\xd8\xff\xe0 fake coverage")
    quality = os.environ.get("FAKE_QUALITY_FILE")
    (splatter / "quality.json").write_text(Path(quality).read_text() if quality else json.dumps(FAKE_QUALITY))
progress("export", 100)
