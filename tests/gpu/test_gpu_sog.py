"""The SOG writer on CUDA: the same format and codebooks as on the CPU, its k-means in half precision
as good as the CPU's single precision, and a pipeline-sized splat compressed."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from splat_render.ply import write_gaussians
from splat_render.sog import decode_sog, morton_order, write_sog
from splat_render.synthetic import SceneSpec, make_scene

pytestmark = pytest.mark.gpu


def test_cuda_and_cpu_write_the_same_codebooks_and_as_close_a_palette(tmp_path):
    g = make_scene(SceneSpec(gaussians=30_000)).gaussians
    write_gaussians(tmp_path / "in.ply", g)
    write_sog(tmp_path / "in.ply", tmp_path / "cuda.sog", "cuda")
    write_sog(tmp_path / "in.ply", tmp_path / "cpu.sog", "cpu")

    metas = [json.loads(zipfile.ZipFile(tmp_path / f"{d}.sog").read("meta.json")) for d in ("cuda", "cpu")]
    for key in ("scales", "sh0"):
        assert np.allclose(metas[0][key]["codebook"], metas[1][key]["codebook"], rtol=1e-6), key
    # The higher bands' error against the source, in the SOG's order (the same for both).
    source = g.sh_rest[torch.from_numpy(morton_order(g.means.numpy()))]
    errors = [
        float((decode_sog((tmp_path / f"{d}.sog").read_bytes()).sh_rest - source).pow(2).mean().sqrt())
        for d in ("cuda", "cpu")
    ]
    assert errors[0] <= 1.02 * errors[1], errors


def test_a_pipeline_sized_splat_encodes_on_cuda_to_under_a_fifth_of_its_ply(tmp_path):
    """1.5 M gaussians of SH degree 3 (the speed is scripts/sog-bench's to measure)."""
    write_gaussians(tmp_path / "in.ply", make_scene(SceneSpec(gaussians=1_500_000)).gaussians)
    report = write_sog(tmp_path / "in.ply", tmp_path / "out.sog", "cuda")
    assert report.gaussians == 1_500_000 and report.sh_degree == 3
    assert report.bytes < (tmp_path / "in.ply").stat().st_size / 5
