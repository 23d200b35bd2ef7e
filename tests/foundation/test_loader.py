"""The loader: real eval_setup, moved job roots, other working directories, offline, torch >= 2.6."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipeline.preview import renderer_environment
from splat_render.errors import PreviewInputError
from splat_render.model import load_splatfacto
from splat_render.synthetic import RUN_DIR

FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")


def test_moved_run_loads_offline_from_another_directory(
    synthetic_run, job_root_copy, tmp_path, monkeypatch, no_network
):
    monkeypatch.chdir(tmp_path)  # neither the original nor the new job root
    loaded = load_splatfacto(job_root_copy / RUN_DIR / "config.yml", device="cpu")

    for name in FIELDS:
        assert torch.equal(getattr(loaded.gaussians, name), getattr(synthetic_run.scene.gaussians, name)), (
            name
        )
    assert loaded.gaussians.sh_degree == 3
    assert loaded.rasterize_mode == "classic"
    assert torch.allclose(loaded.background, torch.tensor([0.1490, 0.1647, 0.2157]))
    assert loaded.checkpoint.parent == job_root_copy / RUN_DIR / "nerfstudio_models"
    assert loaded.step == 2999


def test_training_cameras_are_in_the_training_frame(synthetic_run, job_root_copy):
    loaded = load_splatfacto(job_root_copy / RUN_DIR / "config.yml", device="cpu")
    written = synthetic_run.scene.camera_c2w
    cameras = loaded.cameras.camera_to_worlds.numpy()
    # nerfstudio keeps a train split of the cameras; each must be one of those written, unchanged.
    assert 0 < len(cameras) <= len(written)
    distance = np.abs(cameras[:, None] - written[None]).max(axis=(2, 3)).min(axis=1)
    assert distance.max() < 1e-5


def test_newest_checkpoint_wins(job_root_copy):
    models = job_root_copy / RUN_DIR / "nerfstudio_models"
    newest = models / "step-000003999.ckpt"
    state = torch.load(models / "step-000002999.ckpt", weights_only=False)
    state["pipeline"]["_model.gauss_params.means"] += 1.0
    state["step"] = 3999
    torch.save(state, newest)
    loaded = load_splatfacto(job_root_copy / RUN_DIR / "config.yml", device="cpu")
    assert loaded.checkpoint == newest and loaded.step == 3999


def test_checkpoint_needs_full_unpickling(synthetic_run):
    """Like trainer checkpoints, the synthetic one pickles numpy scalars: torch's safe mode refuses it."""
    with pytest.raises(Exception, match="(?i)weights_only|unpickl"):
        torch.load(synthetic_run.checkpoint, weights_only=True)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing_config", "config not found"),
        ("no_checkpoint", "no checkpoint"),
        ("corrupt_checkpoint", "cannot load checkpoint"),
        ("not_splatfacto", "only splatfacto"),
        ("not_a_config", "not a"),
        ("no_dataset", "transforms.json"),
    ],
)
def test_errors_are_one_line(job_root_copy, damage, message):
    config = job_root_copy / RUN_DIR / "config.yml"
    models = config.parent / "nerfstudio_models"
    if damage == "missing_config":
        config.unlink()
    elif damage == "no_checkpoint":
        for ckpt in models.iterdir():
            ckpt.unlink()
    elif damage == "corrupt_checkpoint":
        next(models.iterdir()).write_bytes(b"\x80\x02 definitely not a checkpoint")
    elif damage == "not_splatfacto":
        config.write_text(
            config.read_text()
            .replace("method_name: splatfacto", "method_name: nerfacto")
            .replace(
                "nerfstudio.models.splatfacto.SplatfactoModelConfig",
                "nerfstudio.models.nerfacto.NerfactoModelConfig",
            )
        )
    elif damage == "not_a_config":
        config.write_text("just: [some, yaml]\n")
    elif damage == "no_dataset":
        (job_root_copy / "refined" / "nerfstudio-data" / "transforms.json").unlink()
    with pytest.raises(PreviewInputError, match=message) as error:
        load_splatfacto(config, device="cpu")
    assert "\n" not in str(error.value)


def test_fresh_process_loads_without_the_method_registry(synthetic_run, tmp_path):
    """The lean import path: eval_setup works, the registry of all methods is never built, and a
    later import of the registry still gets nerfstudio's real one."""
    script = (
        "import sys\n"
        "from splat_render.model import load_splatfacto\n"
        f"loaded = load_splatfacto({str(synthetic_run.config)!r}, device='cpu')\n"
        "print(len(loaded.gaussians), 'nerfstudio.configs.method_configs' in sys.modules)\n"
        "from nerfstudio.configs.method_configs import all_methods\n"
        "print('nerfacto' in all_methods)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **renderer_environment()},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(len(synthetic_run.scene.gaussians)), "False", "True"]


def test_the_config_check_tells_splatfacto_runs_from_every_other_method(tmp_path):
    """The check reads config.yml's class tags without importing them; nerfstudio's own configs of
    every method it ships, dumped as ns-train dumps them, are told apart."""
    import yaml
    from nerfstudio.configs.method_configs import method_configs

    from splat_render.model import splatfacto_model_config

    accepted = []
    for name, config in method_configs.items():
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.dump(config))
        try:
            splatfacto_model_config(path)
            accepted.append(name)
        except PreviewInputError as error:
            assert f"is a '{config.method_name}' run; only splatfacto models" in str(error)
    assert accepted == ["splatfacto", "splatfacto-big"]
