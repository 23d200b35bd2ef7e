"""A hostile run (a checkpoint or config.yml that would run code when loaded) is refused, not run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from splat_render.cli import main
from splat_render.synthetic import RUN_DIR

MARKER = "ran-code"
TINY = ["--resolution", "64x36", "--frames", "90", "--quiet"]


class RunsCode:
    """Unpickling calls ``os.system``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def command_line(command: str, config: Path, out_dir: Path) -> list[str]:
    if command == "export":
        return ["export", "--config", str(config), "--output", str(out_dir / "splat.ply")]
    return ["preview", "--config", str(config), "--output", str(out_dir / "preview.mp4"), *TINY]


def hostile_checkpoint(config: Path, marker: Path) -> None:
    checkpoint = next((config.parent / "nerfstudio_models").glob("step-*.ckpt"))
    state = torch.load(checkpoint, weights_only=False)
    state["schedulers"]["means"]["payload"] = RunsCode(marker)
    torch.save(state, checkpoint)


@pytest.mark.parametrize("command", ["export", "preview"])
def test_a_checkpoint_that_runs_code_is_refused(job_root_copy, tmp_path, capsys, command):
    config = job_root_copy / RUN_DIR / "config.yml"
    marker = tmp_path / MARKER
    hostile_checkpoint(config, marker)

    code = main(command_line(command, config, tmp_path))

    err = capsys.readouterr().err.strip().splitlines()
    assert not marker.exists()
    assert code == 2 and len(err) == 1, err
    assert "system, which nerfstudio checkpoints never hold" in err[0], err


def test_the_checkpoints_nerfstudio_writes_still_load(synthetic_run, tmp_path):
    """Its schedulers' learning rates are numpy scalars: those are allowed."""
    checkpoint = torch.load(synthetic_run.checkpoint, weights_only=False)
    assert type(checkpoint["schedulers"]["means"]["base_lrs"][0]).__module__ == "numpy"
    assert main(["export", "--config", str(synthetic_run.config), "--output", str(tmp_path / "s.ply")]) == 0


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/apply:nerfstudio.utils.scripts.run_command ['touch {marker}']",
        "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
        "!!python/name:os.system ''",
        "!!python/module:os ''",
        "!!python/object:subprocess.Popen {{args: ['touch', '{marker}']}}",
    ],
    ids=["apply-os", "apply-nerfstudio-function", "new", "name", "module", "object"],
)
@pytest.mark.parametrize("command", ["export", "preview"])
def test_a_config_that_names_other_code_is_refused_before_nerfstudio_reads_it(
    job_root_copy, tmp_path, capsys, tag, command
):
    config = job_root_copy / RUN_DIR / "config.yml"
    marker = tmp_path / MARKER
    text = config.read_text()
    assert text.count("\nvis: ") == 1
    config.write_text(text.replace("\nvis: ", f"\nvis: {tag.format(marker=marker)}\nunused: ", 1))

    code = main(command_line(command, config, tmp_path))

    err = capsys.readouterr().err.strip().splitlines()
    assert not marker.exists()
    assert code == 2 and len(err) == 1, err
    assert "names code a nerfstudio config never does" in err[0], err
