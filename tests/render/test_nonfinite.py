"""Gaussians with a NaN or infinite value, in any field, are left out and counted, whatever the source."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from splat_render.cli import main
from splat_render.gaussians import Gaussians
from splat_render.ply import read_gaussians, write_gaussians
from splat_render.preview import load_scene
from splat_render.synthetic import RUN_DIR

FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")
TINY = ["--resolution", "64x36", "--frames", "90", "--quiet"]


@pytest.fixture(scope="module")
def small(synthetic_run) -> Gaussians:
    """Every tenth gaussian of the synthetic scene: renders in seconds on the CPU."""
    gaussians = read_gaussians(synthetic_run.ply)
    return gaussians.select(torch.arange(0, len(gaussians), 10))


def damaged(gaussians: Gaussians, rows: slice, **values: float) -> Gaussians:
    """A copy with ``field=value`` written into the first coordinate of each of ``rows``."""
    fields = {name: getattr(gaussians, name).clone() for name in FIELDS}
    for name, value in values.items():
        column = fields[name][rows]
        column.view(column.shape[0], -1)[:, 0] = value
    return Gaussians(**fields)


@pytest.mark.parametrize("field", FIELDS)
def test_a_non_finite_value_in_any_field_leaves_its_gaussian_out_of_a_ply(small, tmp_path, field):
    broken = damaged(small, slice(0, 3), **{field: float("nan")})
    write_gaussians(tmp_path / "splat.ply", damaged(broken, slice(3, 5), **{field: -float("inf")}))

    scene = load_scene(None, tmp_path / "splat.ply", torch.device("cpu"))

    assert torch.equal(scene.gaussians.means, small.means[5:])
    assert scene.non_finite == 5


def test_a_ply_with_broken_scales_and_rotations_renders_its_scene_and_says_so(small, tmp_path, capsys):
    ply = tmp_path / "splat.ply"
    write_gaussians(ply, damaged(small, slice(0, 20), log_scales=float("nan"), quats=float("inf")))

    assert main(["preview", "--ply", str(ply), "--output", str(tmp_path / "p.mp4"), *TINY]) == 0

    summary = " ".join(capsys.readouterr().err.split())  # as rich wrapped it
    assert "dropped 20 with non-finite values" in summary, summary
    with av.open(str(tmp_path / "p.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.ptp(frame.reshape(-1, 3), axis=0).max() > 40  # the scene, not a blank background


@pytest.mark.parametrize("source", ["ply", "checkpoint"])
def test_nothing_but_non_finite_gaussians_is_one_line_that_counts_them(job_root_copy, capsys, source):
    config = job_root_copy / RUN_DIR / "config.yml"
    if source == "ply":
        ply = job_root_copy / "refined/splatter/splat.ply"
        write_gaussians(ply, damaged(read_gaussians(ply), slice(None), log_scales=float("nan")))
        inputs = ["--ply", str(ply)]
    else:
        checkpoint = next((config.parent / "nerfstudio_models").glob("step-*.ckpt"))
        state = torch.load(checkpoint, weights_only=False)
        state["pipeline"]["_model.gauss_params.scales"].fill_(float("nan"))
        torch.save(state, checkpoint)
        inputs = ["--config", str(config)]

    code = main(["preview", *inputs, "--output", str(job_root_copy / "p.mp4"), *TINY])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "no usable gaussians" in err[0] and "of 3,000, 3,000 have a non-finite value" in err[0], err
