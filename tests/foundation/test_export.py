"""splat-render export against nerfstudio's own exporter (ns-export gaussian-splat), on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.preview import renderer_environment
from splat_render.cli import main
from splat_render.export import export_splat
from splat_render.model import offline_nerfstudio
from splat_render.ply import read_gaussians
from splat_render.preview import load_scene
from splat_render.synthetic import RUN_DIR

REPO = Path(__file__).resolve().parents[2]
PARAMS = "_model.gauss_params."
THRESHOLD = np.float32(-5.5373)  # ns-export's logit(1/255), as a float32 opacity can hold it


def edit_checkpoint(config: Path, edit) -> None:
    """Load the run's checkpoint, let ``edit`` change its gaussian parameters in place, save it."""
    path = next((config.parent / "nerfstudio_models").glob("step-*.ckpt"))
    state = torch.load(path, weights_only=False)
    params = {name.removeprefix(PARAMS): value for name, value in state["pipeline"].items() if PARAMS in name}
    edit(params)
    state["pipeline"].update({PARAMS + name: value for name, value in params.items()})
    torch.save(state, path)


def use_sh_degree_0(config: Path) -> None:
    text = config.read_text()
    assert text.count("sh_degree: 3") == 1
    config.write_text(text.replace("sh_degree: 3", "sh_degree: 0"))
    edit_checkpoint(config, lambda p: p.update(features_rest=p["features_rest"][:, :0]))


def damage_rows(params: dict) -> None:
    """Rows ns-export drops or keeps for a reason: non-finite values and opacities at its threshold."""
    params["scales"][0, 1] = float("nan")
    params["features_dc"][1, 2] = float("inf")
    params["opacities"][2, 0] = float("nan")
    params["opacities"][3, 0] = -10.0
    params["opacities"][4, 0] = float(THRESHOLD)  # not below: kept
    params["opacities"][5, 0] = float(np.nextafter(THRESHOLD, np.float32(-np.inf)))
    params["opacities"][6, 0] = float(np.nextafter(THRESHOLD, np.float32(np.inf)))
    params["quats"][7, 0] = -float("inf")
    params["opacities"][8, 0] = -float("inf")
    if params["features_rest"].shape[1]:
        params["features_rest"][9, 4, 1] = float("nan")


def ns_export(exporter, job_root: Path, out_dir: Path, monkeypatch) -> Path:
    """Run nerfstudio's exporter as ``ns-export gaussian-splat`` does, from the job root, offline."""
    monkeypatch.chdir(job_root)
    with offline_nerfstudio():
        exporter(load_config=RUN_DIR / "config.yml", output_dir=out_dir).main()
    return out_dir / "splat.ply"


@pytest.mark.parametrize("sh_degree", [3, 0])
def test_export_is_byte_identical_to_ns_export(job_root_copy, tmp_path, ns_exporter, monkeypatch, sh_degree):
    config = job_root_copy / RUN_DIR / "config.yml"
    if sh_degree == 0:
        use_sh_degree_0(config)
    edit_checkpoint(config, damage_rows)

    theirs = ns_export(ns_exporter, job_root_copy, tmp_path / "ns", monkeypatch)
    report = export_splat(config, tmp_path / "ours.ply")

    assert (tmp_path / "ours.ply").read_bytes() == theirs.read_bytes()
    header = theirs.read_bytes().split(b"end_header\n")[0].decode()
    assert ("f_rest_44" in header) == (sh_degree == 3)
    # Rows 0, 2, 7, 8, and with SH degree 3 rows 1 and 9; with degree 0 splatfacto stores colour
    # logits, and row 1's infinite logit is the finite colour RGB2SH(sigmoid(inf)).
    non_finite = 6 if sh_degree == 3 else 4
    assert (report.non_finite, report.faint) == (non_finite, 2)  # rows 3 and 5
    assert report.written == 3000 - non_finite - 2


def test_a_nan_position_drops_that_row_where_ns_export_fails(
    job_root_copy, tmp_path, ns_exporter, monkeypatch
):
    config = job_root_copy / RUN_DIR / "config.yml"
    edit_checkpoint(config, lambda p: p["means"].__setitem__((10, 1), float("nan")))
    with pytest.raises(ValueError, match="not empty"):  # its finite test drops every row
        ns_export(ns_exporter, job_root_copy, tmp_path / "failed", monkeypatch)

    report = export_splat(config, tmp_path / "ours.ply")
    keep = torch.arange(3000) != 10
    edit_checkpoint(config, lambda p: p.update({name: value[keep] for name, value in p.items()}))
    theirs = ns_export(ns_exporter, job_root_copy, tmp_path / "ns", monkeypatch)

    assert (tmp_path / "ours.ply").read_bytes() == theirs.read_bytes()
    assert (report.written, report.non_finite) == (2999, 1)


def test_the_command_imports_no_nerfstudio(synthetic_run, tmp_path):
    output = tmp_path / "splat.ply"
    script = (
        "import sys\n"
        "from splat_render.cli import main\n"
        f"status = main(['export', '--config', {str(synthetic_run.config)!r}, '--output', {str(output)!r}])\n"
        "print(status, any(name.startswith('nerfstudio') for name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **renderer_environment()},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        f"wrote {output}: 3,000 gaussians from {synthetic_run.checkpoint.name} "
        "(dropped 0 with non-finite values, 0 fainter than 1/255)",
        "0 False",
    ]
    assert output.read_bytes() == synthetic_run.ply.read_bytes()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_config", "config not found"),
        ("no_checkpoint", "no checkpoint"),
        ("corrupt_checkpoint", "cannot load checkpoint"),
        ("not_a_checkpoint_of_gaussians", "holds no splatfacto gaussians"),
        ("not_splatfacto", "only splatfacto models"),
        ("nothing_to_export", "no usable gaussians"),
        ("missing_output_folder", "output folder does not exist"),
        ("output_is_a_folder", "cannot write"),
    ],
)
def test_errors_are_one_line_exit_2_and_leave_nothing(job_root_copy, tmp_path, capsys, case, message):
    config = job_root_copy / RUN_DIR / "config.yml"
    models = config.parent / "nerfstudio_models"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "splat.ply"
    if case == "missing_config":
        config = tmp_path / "nope.yml"
    elif case == "no_checkpoint":
        for checkpoint in models.iterdir():
            checkpoint.unlink()
    elif case == "corrupt_checkpoint":
        next(models.iterdir()).write_bytes(b"garbage")
    elif case == "not_a_checkpoint_of_gaussians":
        torch.save({"step": 1, "pipeline": {"_model.field.weight": torch.zeros(3)}}, next(models.iterdir()))
    elif case == "not_splatfacto":
        config.write_text(
            config.read_text().replace("splatfacto.SplatfactoModelConfig", "nerfacto.NerfactoModelConfig")
        )
    elif case == "nothing_to_export":
        edit_checkpoint(config, lambda p: p["opacities"].fill_(-12.0))
    elif case == "missing_output_folder":
        output = tmp_path / "no-such-folder" / "splat.ply"
    elif case == "output_is_a_folder":
        output.mkdir()

    code = main(["export", "--config", str(config), "--output", str(output)])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in out_dir.rglob("*")) == (
        ["splat.ply"] if case == "output_is_a_folder" else []
    )


@pytest.mark.parametrize("sh_degree", [3, 0])
def test_a_preview_of_the_checkpoint_renders_what_the_export_writes(job_root_copy, tmp_path, sh_degree):
    """The same gaussians, rows dropped alike; with SH degree 0 too, where splatfacto stores colour
    logits and both loaders convert them."""
    config = job_root_copy / RUN_DIR / "config.yml"
    if sh_degree == 0:
        use_sh_degree_0(config)
    edit_checkpoint(config, damage_rows)
    export_splat(config, tmp_path / "splat.ply")

    from_checkpoint = load_scene(config, None, torch.device("cpu")).gaussians
    exported = read_gaussians(tmp_path / "splat.ply")

    for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
        assert torch.equal(getattr(from_checkpoint, name), getattr(exported, name)), name
    assert from_checkpoint.sh_degree == sh_degree
