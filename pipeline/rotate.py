"""Step 5: rotate ``splat.ply`` into the frame the published ``.splat`` files use.

(x, y, z) → (−z, −x, y): positions are rotated, each gaussian's orientation is left-multiplied by
the rotation's quaternion and its higher SH bands are rotated (``sh_rotation``), so every ellipsoid and
its view-dependent colour turn with the scene; scales, opacities and base colours are unchanged. The
header's ``Vertical Axis`` comment is turned too: ns-export's ``z`` becomes ``-x``, where the scene's
up now points, so that a reader of ``splat_rot.ply`` finds its up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData

from pipeline.sh_rotation import rotate_sh_rest
from splat_render.errors import PreviewInputError
from splat_render.gaussians import Gaussians
from splat_render.ply import parse_axis, read_gaussians, write_gaussians

VERTICAL_AXIS = "Vertical Axis"  # ns-export's header comment naming up: "Vertical Axis: z"
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
        sh_rest=rotate_sh_rest(gaussians.sh_rest, rotation),
    )


def rotate_ply(source: Path, target: Path, rotation: torch.Tensor = PUBLISHED_FRAME) -> None:
    """Write the source PLY's gaussians and header comments turned by ``rotation``."""
    gaussians = read_gaussians(source)  # first: a one-line error for a file that is no splat PLY
    comments = rotated_comments(PlyData.read(str(source)).comments, rotation)
    write_gaussians(target, rotate_gaussians(gaussians, rotation), comments)


def rotated_comments(comments: list[str], rotation: torch.Tensor) -> list[str]:
    """The header comments, the ``Vertical Axis`` one naming where up points after the turn (dropped
    when that is no longer a coordinate axis, or was unreadable)."""
    turned = []
    for comment in comments:
        name, _, value = comment.partition(":")
        if name.strip().lower() != VERTICAL_AXIS.lower():
            turned.append(comment)
        elif (axis := _turned_axis(value.strip(), rotation)) is not None:
            turned.append(f"{VERTICAL_AXIS}: {axis}")
    return turned


def _turned_axis(name: str, rotation: torch.Tensor) -> str | None:
    try:
        up = rotation.double().numpy() @ parse_axis(name)
    except PreviewInputError:
        return None
    if np.count_nonzero(np.round(up, 9)) != 1:
        return None
    axis = int(np.abs(up).argmax())
    return f"{'-' if up[axis] < 0 else ''}{'xyz'[axis]}"
