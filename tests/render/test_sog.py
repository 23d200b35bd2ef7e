"""The SOG writer, held to PlayCanvas's own decoder and encoder (``splat-transform``, which
``scripts/setup-splat-transform`` installs into ``.node/``), and to frames rendered from what it decodes."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scenes import real_captures

from splat_render.cli import main as cli
from splat_render.gaussians import Gaussians
from splat_render.ply import read_gaussians, write_gaussians
from splat_render.raster import RenderSettings, render_batch
from splat_render.sog import decode_sog, morton_order, write_sog
from splat_render.synthetic import SceneSpec, make_scene
from splat_render.views import viewmats_from_c2w

REPO = Path(__file__).resolve().parents[2]
SPLAT_TRANSFORM = REPO / ".node" / "node_modules" / ".bin" / "splat-transform"
needs_reference = pytest.mark.skipif(
    not SPLAT_TRANSFORM.exists() or shutil.which("node") is None,
    reason="needs node and scripts/setup-splat-transform (PlayCanvas's splat-transform in .node/)",
)
FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")
SMALL = (96, 72)  # render size for the PSNR checks


def splat_transform(*args: str | Path) -> None:
    subprocess.run(
        [str(SPLAT_TRANSFORM), "-q", "-w", "-g", "cpu", *map(str, args)],
        check=True,
        timeout=900,
        capture_output=True,
    )


def with_random_bands(g: Gaussians, degree: int = 3, sigma: float = 0.08, seed: int = 0) -> Gaussians:
    """The gaussians with higher SH bands added: the palette's path, which the SH0 fixtures skip."""
    rest = (
        torch.randn(len(g), (degree + 1) ** 2 - 1, 3, generator=torch.Generator().manual_seed(seed)) * sigma
    )
    return Gaussians(g.means, g.quats, g.log_scales, g.opacity_logits, g.sh_dc, rest)


def scene(name: str) -> tuple[Gaussians, np.ndarray, float]:
    """Gaussians, some of their training cameras (OpenGL c2w) and the focal length at SMALL."""
    if name == "room":
        room = make_scene(SceneSpec(gaussians=8000, cameras=6))  # SH degree 3
        return room.gaussians, room.camera_c2w, room.focal * SMALL[0] / room.image_size[0]
    capture = real_captures.load(name.removesuffix("+sh3"))
    g = with_random_bands(capture.gaussians) if name.endswith("+sh3") else capture.gaussians
    cameras = capture.c2w[:: max(1, len(capture.c2w) // 5)][:5]
    return g, cameras, capture.focal * SMALL[0] / capture.width


def render(g: Gaussians, c2w: np.ndarray, focal: float) -> torch.Tensor:
    width, height = SMALL
    viewmats = viewmats_from_c2w(torch.from_numpy(c2w).float())
    K = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]]).expand(len(c2w), 3, 3)
    return render_batch(g, viewmats, K, width, height, RenderSettings(torch.zeros(3)))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / torch.mean((a - b) ** 2)))


def nearest_entry_error(values: torch.Tensor, book: list[float]) -> torch.Tensor:
    """Each value's distance to the nearest codebook entry: the least error any label could give."""
    return (values.reshape(-1, 1) - torch.tensor(book)[None, :]).abs().min(dim=1).values.reshape(values.shape)


@pytest.fixture(scope="module", params=["snowmiku_arc", "tum_fr1_rpy", "snowmiku_arc+sh3", "room"])
def encoded(request, tmp_path_factory):
    """(name, the source gaussians in the SOG's order, the .sog, cameras, focal) for each scene."""
    g, c2w, focal = scene(request.param)
    folder = tmp_path_factory.mktemp(request.param.replace("+", "_"))
    write_gaussians(folder / "splat.ply", g)
    write_sog(folder / "splat.ply", folder / "splat.sog", "cpu")
    ordered = g.select(torch.from_numpy(morton_order(g.means.numpy())))
    return request.param, ordered, folder / "splat.sog", c2w, focal


@needs_reference
def test_the_reference_decodes_every_field_within_its_quantisation(encoded, tmp_path):
    name, g, sog, _, _ = encoded
    splat_transform(sog, tmp_path / "decoded.ply")
    decoded = read_gaussians(tmp_path / "decoded.ply")
    meta = json.loads(zipfile.ZipFile(sog).read("meta.json"))

    assert len(decoded) == len(g) == meta["count"] and decoded.sh_degree == g.sh_degree
    # Positions: 16 bits between the bounds of sign(v)·ln(|v|+1), rounded: half a step there.
    step = (np.array(meta["means"]["maxs"]) - np.array(meta["means"]["mins"])) / 65535
    bound = (g.means.abs() + 1) * torch.from_numpy(np.expm1(0.5 * step * 1.001)).float() + 1e-6
    assert ((decoded.means - g.means).abs() <= bound).all()
    # Rotations: three components in 8 bits each, the fourth from the unit norm.
    unit = g.quats / g.quats.norm(dim=1, keepdim=True)
    assert (decoded.quats * unit).sum(dim=1).abs().min() > 0.9999
    # Scales and colours: a codebook entry, the nearest one to the value.
    for field, book in (("log_scales", meta["scales"]["codebook"]), ("sh_dc", meta["sh0"]["codebook"])):
        error = (getattr(decoded, field) - getattr(g, field)).abs()
        assert (error <= nearest_entry_error(getattr(g, field), book) + 1e-5).all(), field
    # Opacities: 8 bits of sigmoid(opacity), rounded.
    assert (decoded.opacities() - g.opacities()).abs().max() <= 0.5 / 255 + 1e-5
    # Our own reader decodes exactly what PlayCanvas's does (the GPU benchmark relies on it).
    ours = decode_sog(sog.read_bytes())
    for field in FIELDS:
        assert torch.allclose(getattr(ours, field), getattr(decoded, field), rtol=1e-6, atol=1e-6), field
    if g.sh_degree:
        # Higher bands: a palette entry each, whose values are codebook entries; closer than no bands.
        error = (decoded.sh_rest - g.sh_rest).pow(2).mean().sqrt()
        assert error < 0.8 * g.sh_rest.pow(2).mean().sqrt(), name
        assert torch.isin(decoded.sh_rest, torch.tensor(meta["shN"]["codebook"])).all()
        assert meta["shN"]["count"] == min(64, 2 ** math.floor(math.log2(len(g) / 1024))) * 1024


def test_frames_from_the_decoded_sog_match_frames_from_the_ply(encoded):
    name, g, sog, c2w, focal = encoded
    decoded = decode_sog(sog.read_bytes())
    original, compressed = render(g, c2w, focal), render(decoded, c2w, focal)
    assert original.mean() > 0.05  # the cameras see the scene
    assert psnr(original, compressed) >= 30.0, name


@needs_reference
def test_the_size_and_codebooks_match_the_reference_writer(tmp_path):
    """An SH0 capture (the reference's CPU clustering of higher bands takes minutes)."""
    ply = real_captures.FIXTURES / "snowmiku_arc" / "splat.ply"
    write_sog(ply, tmp_path / "ours.sog", "cpu")
    splat_transform(ply, tmp_path / "theirs.sog")

    ours, theirs = (zipfile.ZipFile(tmp_path / f"{who}.sog") for who in ("ours", "theirs"))
    assert sorted(ours.namelist()) == sorted(theirs.namelist())
    meta, reference = (json.loads(z.read("meta.json")) for z in (ours, theirs))
    for key in ("scales", "sh0"):
        assert np.allclose(meta[key]["codebook"], reference[key]["codebook"], rtol=1e-6), key
    assert np.allclose(meta["means"]["mins"], reference["means"]["mins"], rtol=1e-12)
    assert (tmp_path / "ours.sog").stat().st_size <= 1.10 * (tmp_path / "theirs.sog").stat().st_size
    # The same gaussians in the same (Morton) order: the textures differ only by rounding.
    assert meta["count"] == reference["count"]


def test_the_output_is_deterministic_and_drops_non_finite_rows(tmp_path):
    g = make_scene(SceneSpec(gaussians=1500)).gaussians
    means = g.means.clone()
    means[[3, 700]] = torch.tensor([math.nan, 0.0, 0.0])
    log_scales = g.log_scales.clone()
    log_scales[5, 1] = math.inf
    write_gaussians(
        tmp_path / "in.ply", Gaussians(means, g.quats, log_scales, *(g.opacity_logits, g.sh_dc, g.sh_rest))
    )

    first = write_sog(tmp_path / "in.ply", tmp_path / "a.sog", "cpu")
    write_sog(tmp_path / "in.ply", tmp_path / "b.sog", "cpu")

    assert (first.gaussians, first.non_finite, first.sh_degree) == (1497, 3, 3)
    assert (tmp_path / "a.sog").read_bytes() == (tmp_path / "b.sog").read_bytes()
    assert decode_sog((tmp_path / "a.sog").read_bytes()).means.isfinite().all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sog", "b.sog", "in.ply"]  # no temporary left


def test_morton_order_is_a_permutation_that_keeps_neighbours_together():
    means = make_scene(SceneSpec(gaussians=5000)).gaussians.means.numpy()
    order = morton_order(means)
    assert np.array_equal(np.sort(order), np.arange(len(means)))
    steps = np.linalg.norm(np.diff(means[order], axis=0), axis=1)
    shuffled = np.linalg.norm(np.diff(means, axis=0), axis=1)
    assert np.median(steps) < 0.2 * np.median(shuffled)


def hostile_ply(path: Path, kind: str) -> Path:
    g = make_scene(SceneSpec(gaussians=200)).gaussians
    if kind == "fine":
        write_gaussians(path, g)
    elif kind == "zero gaussians":
        write_gaussians(path, g.select(torch.zeros(len(g), dtype=torch.bool)))
    elif kind == "all non-finite":
        write_gaussians(path, Gaussians(g.means * math.nan, *(getattr(g, f) for f in FIELDS[1:])))
    elif kind == "huge count":
        write_gaussians(path, g)
        data = path.read_bytes()
        path.write_bytes(data.replace(b"element vertex 200\n", b"element vertex 900000000000\n", 1))
    elif kind == "truncated":
        write_gaussians(path, g)
        path.write_bytes(path.read_bytes()[:-1000])
    elif kind == "not a ply":
        path.write_bytes(b"PK\x03\x04 this is a zip")
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("zero gaussians", "holds no gaussians"),
        ("all non-finite", "has no gaussian whose values are all finite"),
        ("huge count", "declares 900,000,000,000 gaussians; a SOG holds at most"),
        ("truncated", "cannot read PLY"),
        ("not a ply", "cannot read PLY"),
        ("missing", "PLY file not found"),
    ],
)
def test_hostile_plys_end_in_one_line_and_write_nothing(tmp_path, capsys, kind, message):
    ply = hostile_ply(tmp_path / "in.ply", kind)

    status = cli(["sog", "--ply", str(ply), "--output", str(tmp_path / "out.sog"), "--device", "cpu"])

    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out.sog").exists() and not list(tmp_path.glob(".*"))


def test_an_output_in_a_missing_folder_ends_in_one_line(tmp_path, capsys):
    ply = hostile_ply(tmp_path / "in.ply", "fine")
    status = cli(["sog", "--ply", str(ply), "--output", str(tmp_path / "no" / "out.sog")])
    err = capsys.readouterr().err
    assert status == 2 and err == f"splat-render: error: output folder does not exist: {tmp_path / 'no'}\n"


def test_the_command_line_writes_the_sog_and_says_what_it_wrote(tmp_path, capsys):
    ply = hostile_ply(tmp_path / "in.ply", "fine")
    assert cli(["sog", "--ply", str(ply), "--output", str(tmp_path / "out.sog"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'out.sog'}: 200 gaussians, SH degree 3" in out
    names = zipfile.ZipFile(tmp_path / "out.sog").namelist()
    assert names[-1] == "meta.json" and "shN_labels.webp" in names
