"""The pipeline's external programs: started alike, failing on one line, tied to the pipeline's life
(a SIGKILLed run.py taking its training with it is in test_run_orchestration)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import with_parent
from pipeline.commands import run_command
from pipeline.errors import PipelineError

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")


def test_a_program_missing_from_path_fails_before_anything_starts(tmp_path: Path):
    with pytest.raises(PipelineError, match="^cannot start ns-nothing: not found on PATH$"):
        run_command(["ns-nothing", "--help"], cwd=tmp_path)


@linux_only
def test_a_program_path_that_does_not_exist_fails_naming_it(tmp_path: Path):
    with pytest.raises(
        PipelineError, match="nothing exited with status 127: cannot start .*nothing: No such file"
    ):
        run_command([str(tmp_path / "nothing")], cwd=tmp_path)


def test_a_program_runs_with_its_arguments_in_its_folder(tmp_path: Path):
    run_command(
        [sys.executable, "-c", "import sys; open('out', 'w').write(sys.argv[1])", "a b"], cwd=tmp_path
    )
    assert (tmp_path / "out").read_text() == "a b"


@linux_only
def test_a_program_whose_parent_went_before_it_was_tied_never_starts(tmp_path: Path):
    """Its parent is not the one named (as after a parent's death, when init adopts it): it must not run."""
    marker = tmp_path / "ran"
    done = subprocess.run(
        [sys.executable, "-I", with_parent.__file__, "1", "touch", str(marker)], capture_output=True
    )
    assert done.returncode == with_parent.EXIT_CANNOT_START
    assert not marker.exists()
