"""Job roots, test videos and stand-ins for the nerfstudio CLIs and the preview renderer."""

from __future__ import annotations

import errno
import itertools
import json
import os
import shlex
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from nerfstudio.data.utils.colmap_parsing_utils import Camera, Image, Point3D, write_model
from PIL import Image as PILImage

from pipeline import layout
from pipeline.frames import frame_name
from splat_render.synthetic import SceneSpec, write_synthetic_run

FRAME_SIZE = (64, 48)
DATASET_FRAMES = {"scan1": 3, "scan2": 2}

# One script stands in for ns-process-data and ns-train (it goes by the name it was called with): it
# records the call, waits for the file awaits.json names for it if any, then copies that tool's
# outputs from a finished synthetic run into its working directory. Its mode comes from modes.json
# beside it: "ok", "fail" (outputs, then exit 3: a step cut short), "silent" (exit 0, no outputs) or
# "hang" (no outputs, sleeps).
FAKE_TOOL = """\
#!{python}
import json, os, shutil, sys, time
from pathlib import Path

here = Path(__file__).parent
name = Path(sys.argv[0]).name
call = {{"tool": name, "argv": sys.argv[1:], "cwd": os.getcwd(), "pid": os.getpid()}}
with open(here / "calls.jsonl", "a") as calls:
    calls.write(json.dumps(call) + "\\n")
awaits = here / "awaits.json"
awaited = json.loads(awaits.read_text()).get(name) if awaits.exists() else None
deadline = time.monotonic() + 30
while awaited and not Path(awaited).exists():
    if time.monotonic() > deadline:
        sys.exit(f"{{name}}: {{awaited}} never appeared")
    time.sleep(0.02)
modes = here / "modes.json"
mode = json.loads(modes.read_text()).get(name, "ok") if modes.exists() else "ok"
if mode == "silent":
    sys.exit(0)
if mode == "hang":
    time.sleep(120)
output = {outputs!r}[name]
source = Path({template!r}) / output
if source.is_dir():
    shutil.copytree(source, output)
else:
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, output)
if mode == "fail":
    print(name, "ran out of memory")
    sys.exit(3)
"""
FAKE_OUTPUTS = {
    "ns-process-data": str(layout.NERFSTUDIO_DATA),
    "ns-train": str(layout.TRAIN_RUN),
}

# The preview renderer's stand-in: `fake_preview.py MODE --config C --output O --standby`. Like the
# renderer it writes its pid file first, waits for a line on stdin, and exits without rendering when
# the input ends instead. Each go-ahead it gets is recorded in preview_calls.jsonl; then it writes
# each file an option names.
FAKE_PREVIEW = """\
import json, os, subprocess, sys, time
from pathlib import Path

here = Path(__file__).parent
mode, args = sys.argv[1], sys.argv[2:]
standby = "--standby" in args
named = [arg for arg in args if arg != "--standby"]
options = dict(zip(named[::2], named[1::2]))
(here / "preview_pid.tmp").write_text(str(os.getpid()))
(here / "preview_pid.tmp").replace(here / "preview_pid")
if mode == "crash-in-standby":
    raise RuntimeError("no CUDA driver")
if standby and not sys.stdin.readline():
    sys.exit("fake preview: the input ended before the run was finished")
output = Path(options["--output"])
call = {"options": options, "standby": standby}
call["splat.ply at go-ahead"] = output.with_name("splat.ply").exists()
if mode == "beside":  # busy until the job's last other step has written its file
    deadline = time.monotonic() + 30
    while not output.with_name("splat_rot.splat").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    call["splat_rot.splat seen"] = output.with_name("splat_rot.splat").exists()
if mode == "hang":
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    call["pids"] = [helper.pid, os.getpid()]
with open(here / "preview_calls.jsonl", "a") as calls:
    calls.write(json.dumps(call) + "\\n")
if mode == "crash":
    raise RuntimeError("CUDA error: out of memory")
if mode == "hang":
    time.sleep(120)
for option, path in options.items():  # every file the renderer is told to write
    if mode == "no-report" and option in ("--quality-out", "--coverage-out"):
        continue  # the report is best-effort: a preview may end without it
    if option != "--config":
        Path(path).write_bytes(b"not really a preview")
"""


def write_video(path: Path, frames: int, size: tuple[int, int] = FRAME_SIZE) -> list[np.ndarray]:
    """An H.264 MP4 of flat-coloured frames (distinct per frame); returns the RGB frames."""
    width, height = size
    images = [
        np.full((height, width, 3), (40 * i % 256, 200, 255 - 40 * i % 256), np.uint8) for i in range(frames)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return images


def write_colmap_model(folder: Path, image_names: list[str], size: tuple[int, int] = FRAME_SIZE) -> None:
    """A minimal COLMAP model: one pinhole camera, identity poses, a few points."""
    width, height = size
    folder.mkdir(parents=True, exist_ok=True)
    cameras = {1: Camera(1, "PINHOLE", width, height, np.array([50.0, 50.0, width / 2, height / 2]))}
    images = {
        i: Image(
            i, np.array([1.0, 0, 0, 0]), np.array([0.0, 0, i]), 1, name, np.zeros((0, 2)), np.zeros(0, int)
        )
        for i, name in enumerate(image_names, start=1)
    }
    points = {
        i: Point3D(
            i, np.array([0.0, 0, 2 + i]), np.array([200, 100, 50]), 0.5, np.zeros(0, int), np.zeros(0, int)
        )
        for i in range(1, 4)
    }
    write_model(cameras, images, points, str(folder))


@pytest.fixture
def video_writer() -> Callable[..., list[np.ndarray]]:
    return write_video


@pytest.fixture
def colmap_writer() -> Callable[..., None]:
    return write_colmap_model


@pytest.fixture
def job_root(tmp_path: Path) -> Path:
    """A job root as the runner leaves it: two recordings and their COLMAP model."""
    root = tmp_path / "job"
    for name, count in DATASET_FRAMES.items():
        write_video(root / layout.DATASETS / name / layout.DATASET_VIDEO, count)
    names = [frame_name(name, i) for name, count in DATASET_FRAMES.items() for i in range(count)]
    write_colmap_model(root / layout.COLMAP_MODEL, names)
    return root


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A job root holding what the nerfstudio steps produce, from the shared synthetic scene, with few
    small training views: a real renderer's analysis renders every one, slowly on the CPU."""
    root = tmp_path_factory.mktemp("finished-run")
    write_synthetic_run(root, SceneSpec(gaussians=2000, cameras=8, image_size=FRAME_SIZE))
    return root


@dataclass(frozen=True)
class FakeTools:
    """The nerfstudio stand-ins on PATH: set their modes, read their calls."""

    bin_dir: Path

    def set_mode(self, tool: str, mode: str) -> None:
        modes_file = self.bin_dir / "modes.json"
        modes = json.loads(modes_file.read_text()) if modes_file.exists() else {}
        modes_file.write_text(json.dumps({**modes, tool: mode}))

    def await_file(self, tool: str, path: Path) -> None:
        """Have the tool wait until ``path`` exists before it does its work."""
        (self.bin_dir / "awaits.json").write_text(json.dumps({tool: str(path)}))

    def calls(self) -> list[dict]:
        calls_file = self.bin_dir / "calls.jsonl"
        return (
            [json.loads(line) for line in calls_file.read_text().splitlines()] if calls_file.exists() else []
        )

    def tools_called(self) -> list[str]:
        return [call["tool"] for call in self.calls()]


@pytest.fixture
def fake_tools(tmp_path: Path, finished_run: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = FAKE_TOOL.format(python=sys.executable, outputs=FAKE_OUTPUTS, template=str(finished_run))
    for tool in FAKE_OUTPUTS:
        (bin_dir / tool).write_text(script)
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return FakeTools(bin_dir)


@dataclass(frozen=True)
class FakePreview:
    """The renderer stand-in: where it says it runs, and the go-aheads it got."""

    folder: Path

    @property
    def pid_file(self) -> Path:
        return self.folder / "preview_pid"

    def pid(self) -> int:
        return int(self.pid_file.read_text())

    def calls(self) -> list[dict]:
        calls_file = self.folder / "preview_calls.jsonl"
        return (
            [json.loads(line) for line in calls_file.read_text().splitlines()] if calls_file.exists() else []
        )


@pytest.fixture
def fake_preview(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], FakePreview]:
    """Select the renderer stand-in's mode (SPLATTER_PREVIEW_CMD)."""
    script = tmp_path / "preview-bin" / "fake_preview.py"
    script.parent.mkdir()
    script.write_text(FAKE_PREVIEW)

    def use(mode: str) -> FakePreview:
        monkeypatch.setenv("SPLATTER_PREVIEW_CMD", shlex.join([sys.executable, str(script), mode]))
        return FakePreview(script.parent)

    return use


@pytest.fixture
def disk_full_after(monkeypatch: pytest.MonkeyPatch):
    """Make JPEG saving write half a file and fail with ENOSPC from the ``n``-th frame on."""

    def arm(n: int) -> None:
        save, calls, lock = PILImage.Image.save, itertools.count(1), threading.Lock()

        def full_disk(image, fp, *args, **kwargs):
            with lock:
                call = next(calls)
            if call < n:
                return save(image, fp, *args, **kwargs)
            Path(fp).write_bytes(b"\xff\xd8\xff\xe0 half a JPEG")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fp))

        monkeypatch.setattr(PILImage.Image, "save", full_disk)

    return arm
