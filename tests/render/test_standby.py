"""The renderer in standby: it imports, then renders only once told to on stdin."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import pytest
import torch

from pipeline.preview import renderer_environment
from splat_render import standby
from splat_render.cli import main


def test_the_end_of_input_before_the_go_ahead_renders_nothing(synthetic_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    code = main(
        ["preview", "--config", str(synthetic_run.config), "--output", str(tmp_path / "p.mp4"), "--standby"]
    )

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[0].startswith("standing by: imports took")
    assert err[1:] == ["splat-render: error: the input ended before the run was finished: nothing rendered"]
    assert list(tmp_path.iterdir()) == []


def test_a_bad_option_fails_before_standing_by(synthetic_run, tmp_path):
    """A mistake is reported at once, not when training has finished; the input is never read."""
    preview = ["preview", "--config", str(synthetic_run.config), "--output", str(tmp_path / "p.mp4")]
    with subprocess.Popen(
        [sys.executable, "-m", "splat_render", *preview, "--frames", "30", "--standby"],
        stdin=subprocess.PIPE,  # stays open and silent: a renderer that stood by would wait on it
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **renderer_environment()},
    ) as renderer:
        try:
            code = renderer.wait(timeout=120)
        finally:
            renderer.kill()
        errors = renderer.stderr.read().strip().splitlines()
    assert code == 2
    assert errors == ["splat-render: error: frames must be between 90 and 300, got 30"]


def test_standby_imports_leave_gsplats_extension_and_the_gpu_alone():
    """Training may be building gsplat's extension meanwhile, and needs the GPU's memory."""
    script = (
        "import sys, torch\n"
        "from splat_render.standby import import_render_path\n"
        "import_render_path()\n"
        "print('nerfstudio.utils.eval_utils' in sys.modules, 'gsplat' in sys.modules,\n"
        "      'gsplat.cuda._backend' in sys.modules, torch.cuda.is_initialized())\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, **renderer_environment()},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True", "False", "False"]


def test_gsplats_extension_counts_as_built_only_when_its_build_has_finished(tmp_path, monkeypatch):
    """Loading an unfinished build would make gsplat delete it under the training that builds it."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(standby.importlib.util, "find_spec", lambda name: None)  # no compiled wheel
    build = tmp_path / standby.GSPLAT_EXTENSION
    assert not standby.gsplat_extension_built()

    build.mkdir(exist_ok=True)
    (build / "lock").touch()
    assert not standby.gsplat_extension_built()  # building
    (build / f"{standby.GSPLAT_EXTENSION}.so").touch()
    assert not standby.gsplat_extension_built()  # linked, lock not yet released
    (build / "lock").unlink()
    assert standby.gsplat_extension_built()


def test_a_compiled_gsplat_wheel_counts_as_built(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(
        standby.importlib.util, "find_spec", lambda name: object() if name == "gsplat.csrc" else None
    )
    assert standby.gsplat_extension_built()


def test_the_warm_up_waits_for_the_build_and_gives_way_to_the_go_ahead(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(standby.importlib.util, "find_spec", lambda name: None)
    build = tmp_path / standby.GSPLAT_EXTENSION

    go_ahead = threading.Event()
    threading.Timer(0.2, go_ahead.set).start()
    assert not standby.extension_built_before(go_ahead, poll_s=0.01)  # never built: the go-ahead wins

    def finish_build() -> None:
        build.mkdir(exist_ok=True)
        (build / f"{standby.GSPLAT_EXTENSION}.so").touch()

    threading.Timer(0.2, finish_build).start()
    assert standby.extension_built_before(threading.Event(), poll_s=0.01)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_standby_warms_the_gpu_up_before_the_go_ahead(synthetic_run, tmp_path):
    """The warm-up loads gsplat's extension and says so before any go-ahead; the render then works."""
    import gsplat.cuda._backend  # noqa: F401  (builds the extension here if this machine has not yet)

    preview = ["preview", "--config", str(synthetic_run.config), "--output", str(tmp_path / "p.mp4")]
    small = ["--frames", "90", "--resolution", "360p", "--quiet"]
    renderer = subprocess.Popen(
        [sys.executable, "-m", "splat_render", *preview, *small, "--standby"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **renderer_environment()},
    )
    lines = []
    while not (line := renderer.stderr.readline()).startswith(standby.WARM_ANNOUNCEMENT):
        assert line, f"the renderer ended without warming up: {''.join(lines)[-2000:]}"
        lines.append(line)
    assert "CUDA and gsplat's extension loaded" in line, line
    out, err = renderer.communicate("render\n", timeout=300)
    assert renderer.returncode == 0, err[-2000:]
    assert (tmp_path / "p.mp4").stat().st_size > 0
