"""The renderer in standby: it imports, then renders only once told to on stdin."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from splat_render.cli import main

REPO = Path(__file__).resolve().parents[2]


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
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True", "False", "False"]
