"""Start-up of the CLI: building the parser imports nothing heavy, so --help and the light
subcommands answer at once and a preview process imports only what it renders with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline.preview import renderer_environment

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "numpy", "av", "gsplat", "nerfstudio", "splat_render.bench")


def modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, **renderer_environment()},
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


def test_building_the_parser_imports_nothing_heavy():
    loaded = modules_after("from splat_render.cli import build_parser\nbuild_parser().parse_args(['bench'])")
    assert loaded.isdisjoint(HEAVY), sorted(loaded.intersection(HEAVY))


def test_the_bench_and_the_cli_do_not_import_each_other_at_module_level():
    assert "splat_render.cli" not in modules_after("import splat_render.bench")
    assert "splat_render.bench" not in modules_after("import splat_render.cli")
