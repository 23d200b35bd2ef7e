from pathlib import Path

import torch

from pipeline.rotate import (
    PUBLISHED_FRAME,
    quaternion_from_rotation,
    rotate_gaussians,
    rotate_ply,
)
from splat_render.gaussians import Gaussians
from splat_render.ply import read_gaussians, write_gaussians


def random_gaussians(n: int = 500, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    quats = torch.randn(n, 4, generator=g)
    return Gaussians(
        means=torch.randn(n, 3, generator=g) * 3,
        quats=quats / quats.norm(dim=1, keepdim=True),
        log_scales=torch.randn(n, 3, generator=g) - 3,
        opacity_logits=torch.randn(n, generator=g),
        sh_dc=torch.randn(n, 3, generator=g),
        sh_rest=torch.randn(n, 15, 3, generator=g) * 0.1,
    )


def rotation_matrix(q: torch.Tensor) -> torch.Tensor:
    """3×3 matrices of (w, x, y, z) unit quaternions, [N,3,3]."""
    w, x, y, z = q.double().unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def test_a_known_point_maps_to_minus_z_minus_x_y():
    g = random_gaussians(1)
    point = Gaussians(
        torch.tensor([[1.0, 2.0, 3.0]]), g.quats, g.log_scales, g.opacity_logits, g.sh_dc, g.sh_rest
    )
    assert rotate_gaussians(point).means.tolist() == [[-3.0, -1.0, 2.0]]


def test_the_rotation_is_proper():
    torch.testing.assert_close(PUBLISHED_FRAME @ PUBLISHED_FRAME.T, torch.eye(3))
    assert torch.det(PUBLISHED_FRAME) == 1


def test_the_rotation_quaternion_is_the_matrix():
    q = quaternion_from_rotation(PUBLISHED_FRAME)
    torch.testing.assert_close(rotation_matrix(q[None])[0], PUBLISHED_FRAME.double())


def test_quaternion_from_rotation_handles_every_branch():
    qs = torch.cat([random_gaussians(64).quats, torch.tensor([[0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])])
    for q in qs:
        expected = q.double() if q[0] >= 0 else -q.double()
        torch.testing.assert_close(quaternion_from_rotation(rotation_matrix(q[None])[0]), expected)


def test_each_ellipsoid_turns_with_the_scene():
    g = random_gaussians()
    rotated = rotate_gaussians(g)
    torch.testing.assert_close(
        rotation_matrix(rotated.quats), PUBLISHED_FRAME.double() @ rotation_matrix(g.quats), atol=1e-6, rtol=0
    )


def test_quaternions_stay_unit_and_everything_else_is_kept():
    g = random_gaussians()
    rotated = rotate_gaussians(g)
    torch.testing.assert_close(rotated.quats.norm(dim=1), torch.ones(len(g)))
    for field in ("log_scales", "opacity_logits", "sh_dc", "sh_rest"):
        assert torch.equal(getattr(rotated, field), getattr(g, field))


def test_the_inverse_rotation_restores_the_input():
    g = random_gaussians()
    restored = rotate_gaussians(rotate_gaussians(g), PUBLISHED_FRAME.T)
    torch.testing.assert_close(restored.means, g.means)
    torch.testing.assert_close(restored.quats, g.quats)


def test_rotate_ply_writes_the_rotated_gaussians(tmp_path: Path):
    g = random_gaussians()
    write_gaussians(tmp_path / "splat.ply", g)
    rotate_ply(tmp_path / "splat.ply", tmp_path / "splat_rot.ply")
    written = read_gaussians(tmp_path / "splat_rot.ply")
    expected = rotate_gaussians(g)
    for field in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
        assert torch.equal(getattr(written, field), getattr(expected, field))
