"""The preview end to end on the CPU, through the CLI: a real MP4 of the scene, nothing else on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import av
import numpy as np
import pytest
import torch

from pipeline.preview import renderer_environment
from splat_render.cli import main
from splat_render.gaussians import Gaussians
from splat_render.ply import write_gaussians
from splat_render.synthetic import OBJECT_COLORS, RUN_DIR

SMALL = ["--resolution", "192x108", "--frames", "90", "--quiet"]


def decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return stream, frames


def files_under(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_preview_of_the_synthetic_run(synthetic_run, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = files_under(synthetic_run.job_root)

    config = synthetic_run.job_root / RUN_DIR / "config.yml"
    assert main(["preview", "--config", str(config), "--output", str(out_dir / "preview.mp4"), *SMALL]) == 0

    stream, frames = decode(out_dir / "preview.mp4")
    assert stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert len(frames) == 90 and frames[0].shape == (108, 192, 3)
    # Each object's colour shows up somewhere in the orbit (H.264 and 4:2:0 blur it a little).
    pixels = np.concatenate([f.reshape(-1, 3) for f in frames[::5]]).astype(float)
    for name, rgb in OBJECT_COLORS.items():
        distance = np.abs(pixels - np.array(rgb) * 255).max(axis=1)
        assert (distance < 45).sum() >= 20, name
    # Nothing but the MP4 was written: no frame images in the output folder, the temp dir or the run.
    assert files_under(out_dir) == [out_dir.joinpath("preview.mp4").relative_to(out_dir)]
    assert files_under(scratch) == []
    assert files_under(synthetic_run.job_root) == before


def test_camera_path_export_and_ply_rendering(synthetic_run, tmp_path):
    camera_json = tmp_path / "path.json"
    out = tmp_path / "from-ply.mp4"
    args = [
        "preview",
        "--ply",
        str(synthetic_run.ply),
        "--output",
        str(out),
        "--camera-path-out",
        str(camera_json),
    ]
    assert main([*args, *SMALL, "--arc", "270", "--elevation", "40"]) == 0
    import json

    from nerfstudio.cameras.camera_paths import get_path_from_json

    cameras = get_path_from_json(json.loads(camera_json.read_text()))
    assert len(cameras) == 90
    assert len(decode(out)[1]) == 90


def transparent_ply(path):
    n = 100
    g = Gaussians(
        torch.randn(n, 3),
        torch.randn(n, 4),
        torch.zeros(n, 3),
        torch.full((n,), -12.0),
        torch.zeros(n, 3),
        torch.zeros(n, 15, 3),
    )
    write_gaussians(path, g)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_config", "config not found"),
        ("corrupt_checkpoint", "cannot load checkpoint"),
        ("no_checkpoint", "no checkpoint"),
        ("not_splatfacto", "only splatfacto"),
        ("garbage_ply", "cannot read PLY"),
        ("transparent_ply", "no usable gaussians"),
        ("missing_output_folder", "output folder does not exist"),
        ("odd_size", "must be even"),
        ("no_encoder", "encoder"),
        ("no_input", "--config"),
        ("bad_resolution", "resolution"),
        ("too_few_frames", "frames"),
        ("poster_not_an_image", "must end in .png, .jpg or .jpeg"),
        ("sheet_in_missing_folder", "output folder does not exist"),
        ("up_not_an_axis", "up must be one of"),
        ("capture_path_without_cameras", "--path capture follows the training cameras"),
    ],
)
def test_errors_are_one_line_exit_2_and_leave_nothing(job_root_copy, tmp_path, capsys, case, message):
    config = job_root_copy / RUN_DIR / "config.yml"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "preview.mp4"
    source = ["--config", str(config)]
    extra: list[str] = []
    if case == "missing_config":
        source = ["--config", str(tmp_path / "nope.yml")]
    elif case == "corrupt_checkpoint":
        next((config.parent / "nerfstudio_models").iterdir()).write_bytes(b"garbage")
    elif case == "no_checkpoint":
        for checkpoint in (config.parent / "nerfstudio_models").iterdir():
            checkpoint.unlink()
    elif case == "not_splatfacto":
        config.write_text(
            config.read_text()
            .replace("method_name: splatfacto", "method_name: nerfacto")
            .replace("splatfacto.SplatfactoModelConfig", "nerfacto.NerfactoModelConfig")
        )
    elif case == "garbage_ply":
        (tmp_path / "bad.ply").write_bytes(b"ply\nformat nonsense\n")
        source = ["--ply", str(tmp_path / "bad.ply")]
    elif case == "transparent_ply":
        transparent_ply(tmp_path / "clear.ply")
        source = ["--ply", str(tmp_path / "clear.ply")]
    elif case == "missing_output_folder":
        output = tmp_path / "no-such-folder" / "preview.mp4"
    elif case == "odd_size":
        extra = ["--resolution", "191x108"]
    elif case == "no_encoder":
        extra = ["--codec", "no_such_encoder"]
    elif case == "no_input":
        source = []
    elif case == "bad_resolution":
        extra = ["--resolution", "huge"]
    elif case == "too_few_frames":
        extra = ["--frames", "10"]
    elif case == "poster_not_an_image":
        extra = ["--poster", str(out_dir / "poster.gif")]
    elif case == "sheet_in_missing_folder":
        extra = ["--contact-sheet", str(tmp_path / "no-such-folder" / "sheet.png")]
    elif case == "up_not_an_axis":
        extra = ["--up", "sideways"]
    elif case == "capture_path_without_cameras":
        (tmp_path / "splat.ply").write_bytes(
            job_root_copy.joinpath("refined/splatter/splat.ply").read_bytes()
        )
        source = ["--ply", str(tmp_path / "splat.ply")]
        extra = ["--path", "capture"]
    code = main(["preview", *source, "--output", str(output), *SMALL, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err
    assert files_under(out_dir) == []


def test_exit_status_of_the_real_process(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "splat_render", "preview", "--config", str(tmp_path / "x.yml"), "-o", "o.mp4"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **renderer_environment()},
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"splat-render: error: config not found: {tmp_path / 'x.yml'}"
    ]
