"""Step 5: rotate ``splat.ply`` into the frame the published ``.splat`` files use.

(x, y, z) → (−z, −x, y): positions are rotated and each gaussian's orientation is left-multiplied by
the rotation's quaternion, so every ellipsoid turns with the scene; scales, opacities and colours
are unchanged. Higher-order SH coefficients are not rotated (the ``.splat`` file carries only the
view-independent colour).
"""

from __future__ import annotations

from pathlib import Path

import torch

from splat_render.gaussians import Gaussians
from splat_render.ply import read_gaussians, write_gaussians

PUBLISHED_FRAME = torch.tensor(
    [[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
)  # (x, y, z) → (−z, −x, y)


def quaternion_from_rotation(rotation: torch.Tensor) -> torch.Tensor:
    """The unit quaternion (w, x, y, z), w ≥ 0, of a 3×3 rotation matrix (Shepperd's method)."""
    r = rotation.double()
    trace = r.trace()
    diagonal = r.diagonal()
    if trace >= diagonal.max():
        w = torch.sqrt(1.0 + trace) / 2
        q = torch.stack(
            [w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)]
        )
    else:
        i = int(diagonal.argmax())
        j, k = (i + 1) % 3, (i + 2) % 3
        s = torch.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k]) * 2  # 4·|q_i|
        q = torch.empty(4, dtype=torch.float64)
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = s / 4
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    return q if q[0] >= 0 else -q


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a ⊗ b of (w, x, y, z) quaternions, broadcasting over leading dimensions."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def rotate_gaussians(gaussians: Gaussians, rotation: torch.Tensor = PUBLISHED_FRAME) -> Gaussians:
    """The same gaussians with the whole scene turned by ``rotation`` (3×3, det +1)."""
    dtype = gaussians.means.dtype
    q = quaternion_from_rotation(rotation)
    return Gaussians(
        means=(gaussians.means.double() @ rotation.double().T).to(dtype),
        quats=quaternion_multiply(q, gaussians.quats.double()).to(dtype),
        log_scales=gaussians.log_scales,
        opacity_logits=gaussians.opacity_logits,
        sh_dc=gaussians.sh_dc,
        sh_rest=gaussians.sh_rest,
    )


def rotate_ply(source: Path, target: Path) -> None:
    write_gaussians(target, rotate_gaussians(read_gaussians(source)))
