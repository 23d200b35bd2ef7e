import math
import struct
from pathlib import Path

import torch

from pipeline.splat_format import convert_ply_to_splat, splat_records, write_splat
from splat_render.gaussians import SH_C0, Gaussians
from splat_render.ply import write_gaussians


def reference_splat_bytes(g: Gaussians) -> bytes:
    """The format, one splat at a time, as written down."""

    def sigmoid(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    def byte(x: float) -> int:
        return int(min(max(x, 0), 255))

    splats = []
    for i in range(len(g)):
        x, y, z = (float(v) for v in g.means[i])
        s0, s1, s2 = (float(v) for v in g.log_scales[i])
        alpha = sigmoid(float(g.opacity_logits[i]))
        q = [float(v) for v in g.quats[i]]
        norm = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
        unit = [v / norm for v in q] if norm > 0 else [1.0, 0.0, 0.0, 0.0]
        rgb = [int(min(max(0.5 + SH_C0 * float(c), 0.0), 1.0) * 255) for c in g.sh_dc[i]]
        record = struct.pack(
            "<3f3f4B4B",
            x, y, z,
            math.exp(s0), math.exp(s1), math.exp(s2),
            *rgb, int(alpha * 255),
            *(byte(v * 128 + 128) for v in unit),
        )  # fmt: skip
        splats.append(((-math.exp(s0 + s1 + s2) * alpha, x, y, z), record))
    return b"".join(record for _, record in sorted(splats, key=lambda item: item[0]))


def gaussians_with_ties(n: int = 300, seed: int = 1) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g)
    log_scales = torch.randn(n, 3, generator=g) - 2
    opacity = torch.randn(n, generator=g) * 3
    sh_dc = torch.randn(n, 3, generator=g) * 3  # beyond [0, 1] both ways: clamping
    quats = torch.randn(n, 4, generator=g) * 2  # unnormalised
    # Equal importance, positions differing only in x, only in y, only in z; and exact duplicates.
    log_scales[10:20], opacity[10:20] = log_scales[10], opacity[10]
    means[10:20] = means[10]
    means[11, 0] -= 1
    means[12, 1] -= 1
    means[13, 2] -= 1
    means[14, 2] += 1
    means[15] = torch.tensor([-0.0, 0.5, 0.5])
    means[16] = torch.tensor([0.0, 0.5, 0.25])
    quats[20] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # normalises to exactly 256 → clamped
    quats[21] = 0.0  # degenerate: the identity
    quats[22] = torch.tensor([1.0, 1.0, 1.0, 1.0])  # exactly 0.5 each → 192
    return Gaussians(means, quats, log_scales, opacity, sh_dc, torch.zeros(n, 0, 3))


def test_bytes_equal_the_reference_splat_by_splat():
    g = gaussians_with_ties()
    data = splat_records(g).tobytes()
    assert len(data) == 32 * len(g)
    assert data == reference_splat_bytes(g)


def test_most_important_splats_come_first_and_ties_go_by_position():
    g = gaussians_with_ties()
    positions = [tuple(p) for p in splat_records(g)["position"].tolist()]
    importance = torch.exp(g.log_scales.double().sum(dim=1)) * torch.sigmoid(g.opacity_logits.double())
    assert positions[0] == tuple(g.means[int(importance.argmax())].tolist())
    assert positions[-1] == tuple(g.means[int(importance.argmin())].tolist())
    tied = {tuple(p) for p in g.means[10:20].tolist()}
    first = min(i for i, p in enumerate(positions) if p in tied)
    run = positions[first : first + 10]
    assert set(run) == tied and run == sorted(run)  # contiguous, by x, then y, then z


def test_rotation_bytes_of_special_quaternions():
    records = {tuple(r["position"].tolist()): r for r in splat_records(gaussians_with_ties())}
    g = gaussians_with_ties()
    assert records[tuple(g.means[20].tolist())]["rotation"].tolist() == [255, 128, 128, 128]
    assert records[tuple(g.means[21].tolist())]["rotation"].tolist() == [255, 128, 128, 128]
    assert records[tuple(g.means[22].tolist())]["rotation"].tolist() == [192, 192, 192, 192]


def test_the_file_is_written_whole_from_the_ply(tmp_path: Path):
    g = gaussians_with_ties()
    g = Gaussians(g.means, g.quats, g.log_scales, g.opacity_logits, g.sh_dc, torch.zeros(len(g), 15, 3))
    write_gaussians(tmp_path / "splat_rot.ply", g)
    convert_ply_to_splat(tmp_path / "splat_rot.ply", tmp_path / "splat_rot.splat")
    assert (tmp_path / "splat_rot.splat").read_bytes() == reference_splat_bytes(g)
    write_splat(tmp_path / "splat_rot.splat", g)  # over an existing file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["splat_rot.ply", "splat_rot.splat"]
