"""Step 6: the ``.splat`` file web viewers stream: headerless, 32 little-endian bytes per splat.

Per splat: position 3×f32; scale 3×f32 = exp(log scale); colour RGBA 4×u8 with
RGB = clamp(0.5 + SH_C0·f_dc, 0, 1)·255 and A = sigmoid(opacity)·255, truncated; rotation 4×u8 =
normalised (w, x, y, z)·128 + 128, clamped to 0..255 and truncated (a zero quaternion counts as the
identity). Splats are sorted by descending exp(s0 + s1 + s2)·sigmoid(opacity), the biggest and most
opaque first so that a viewer streaming the file draws them first; ties by x, y, z ascending, then
file order. Arithmetic is float64 from the float32 PLY values, so the bytes are reproducible.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from splat_render.gaussians import SH_C0, Gaussians
from splat_render.ply import read_gaussians

SPLAT_RECORD = np.dtype(
    [("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)]
)


def splat_records(gaussians: Gaussians) -> np.ndarray:
    """The ``.splat`` records of the gaussians, in file order."""
    means = gaussians.means.detach().cpu().numpy().astype(np.float64)
    log_scales = gaussians.log_scales.detach().cpu().numpy().astype(np.float64)
    quats = gaussians.quats.detach().cpu().numpy().astype(np.float64)
    sh_dc = gaussians.sh_dc.detach().cpu().numpy().astype(np.float64)
    alpha = 1.0 / (1.0 + np.exp(-gaussians.opacity_logits.detach().cpu().numpy().astype(np.float64)))

    importance = np.exp(log_scales[:, 0] + log_scales[:, 1] + log_scales[:, 2]) * alpha
    order = np.lexsort((means[:, 2], means[:, 1], means[:, 0], -importance))

    norm = np.sqrt(quats[:, 0] ** 2 + quats[:, 1] ** 2 + quats[:, 2] ** 2 + quats[:, 3] ** 2)
    unit = np.where(norm[:, None] > 0, quats / np.where(norm > 0, norm, 1.0)[:, None], [1.0, 0.0, 0.0, 0.0])
    records = np.empty(len(order), dtype=SPLAT_RECORD)
    records["position"] = means
    records["scale"] = np.exp(log_scales)
    records["rgba"][:, :3] = np.trunc(np.clip(0.5 + SH_C0 * sh_dc, 0.0, 1.0) * 255)
    records["rgba"][:, 3] = np.trunc(alpha * 255)
    records["rotation"] = np.trunc(np.clip(unit * 128 + 128, 0, 255))
    return records[order]


def write_splat(path: Path, gaussians: Gaussians) -> None:
    """Write the ``.splat`` file; it appears complete or not at all."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(splat_records(gaussians).tobytes())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def convert_ply_to_splat(source: Path, target: Path) -> None:
    write_splat(target, read_gaussians(source))
