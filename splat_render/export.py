"""``splat-render export``: a splatfacto checkpoint as splat.ply, byte for byte what ``ns-export
gaussian-splat`` (nerfstudio 1.1.5) writes.

An export is a dump of the checkpoint's tensors. ns-export builds the whole model through
``eval_setup`` to read them (seconds of nerfstudio imports) and then writes 62 floats per gaussian
one ``write`` call at a time (over a minute at 1.5 M gaussians). Here the newest ``step-*.ckpt``
beside config.yml is read directly (tensors and numpy scalars only, nothing that would run code;
memory-mapped, so the optimizer state it also holds is never read) and written with the project's
vectorised PLY writer, with ns-export's header, columns, values and row filter:

- with SH degree 0, splatfacto stores the colour as a logit, and ns-export writes RGB2SH(sigmoid(·))
  of it (computed here on the CPU; ns-export computes it where the model lives, so on a GPU the
  float32 rounding of such a run may differ in the last bit);

- rows holding any non-finite value are dropped;
- rows whose opacity logit is below logit(1/255) = -5.5373 are dropped (the rasterizer skips them).

ns-export 1.1.5 applies its finite test to the position columns as a whole, so one NaN position
drops every row and it then fails on the empty table; here that row alone is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from splat_render.errors import PreviewInputError
from splat_render.gaussians import Gaussians, splatfacto_sh_dc
from splat_render.model import find_checkpoint, load_checkpoint, splatfacto_model_config
from splat_render.outputs import check_writable
from splat_render.ply import write_gaussians

MIN_OPACITY_LOGIT = -5.5373  # ns-export's logit(1/255), compared in float32 as it does
GAUSSIAN_STATE = {  # Gaussians field → splatfacto's parameter in the pipeline's state dict
    "means": "_model.gauss_params.means",
    "quats": "_model.gauss_params.quats",
    "log_scales": "_model.gauss_params.scales",
    "opacity_logits": "_model.gauss_params.opacities",
    "sh_dc": "_model.gauss_params.features_dc",
    "sh_rest": "_model.gauss_params.features_rest",
}


@dataclass(frozen=True)
class ExportReport:
    output: Path
    checkpoint: Path
    written: int
    non_finite: int  # rows dropped for a NaN or infinite value
    faint: int  # finite rows dropped for opacity below 1/255


def read_checkpoint_gaussians(checkpoint: Path, sh_degree: int) -> Gaussians:
    """The gaussians stored in a checkpoint of a splatfacto model of that SH degree, on the CPU."""
    state = load_checkpoint(checkpoint, map_location="cpu", mmap=True)
    pipeline = state.get("pipeline") if isinstance(state, dict) else None
    if not isinstance(pipeline, dict):
        raise PreviewInputError(f"cannot load checkpoint {checkpoint}: it holds no pipeline state")
    # nerfstudio's loader strips the prefix a multi-GPU run leaves on the keys; so does this.
    params = {key.removeprefix("module."): value for key, value in pipeline.items()}
    missing = [key for key in GAUSSIAN_STATE.values() if key not in params]
    if missing:
        raise PreviewInputError(f"{checkpoint} holds no splatfacto gaussians (no {missing[0]})")
    tensors = {field: params[key].detach() for field, key in GAUSSIAN_STATE.items()}
    tensors["opacity_logits"] = tensors["opacity_logits"].reshape(-1)
    tensors["sh_dc"] = splatfacto_sh_dc(tensors["sh_dc"], sh_degree)
    try:
        return Gaussians(**tensors)
    except ValueError as exc:
        raise PreviewInputError(f"{checkpoint} holds malformed gaussians: {exc}") from exc


@dataclass(frozen=True)
class Rows:
    """Which gaussians are written (and drawn), and how many are dropped for which reason."""

    kept: torch.Tensor  # [N] bool
    non_finite: int  # rows with a NaN or infinite value
    faint: int  # finite rows with opacity below 1/255

    @property
    def written(self) -> int:
        return len(self.kept) - self.non_finite - self.faint


def exported_rows(gaussians: Gaussians, source: Path) -> Rows:
    """The rows ns-export writes, which are the rows the rasterizer can draw; a one-line error
    saying why when ``source`` (the file they came from) holds none."""
    finite = gaussians.finite_rows()
    faint = finite & (gaussians.opacity_logits < MIN_OPACITY_LOGIT)  # NaN compares False, as in ns-export
    rows = Rows(finite & ~faint, len(gaussians) - int(finite.sum()), int(faint.sum()))
    if rows.written == 0:
        raise PreviewInputError(
            f"no usable gaussians in {source}: of {len(gaussians):,}, {rows.non_finite:,} have a "
            f"non-finite value and {rows.faint:,} are fainter than opacity 1/255"
        )
    return rows


def export_splat(config: Path | str, output: Path | str) -> ExportReport:
    """Write the newest checkpoint of a splatfacto run as ``output``, atomically."""
    config, output = Path(config), Path(output)
    if not config.is_file():
        raise PreviewInputError(f"config not found: {config}")
    sh_degree = splatfacto_model_config(config).get("sh_degree", 3)  # absent: the default nerfstudio reads
    check_writable([output])
    checkpoint = find_checkpoint(config)
    gaussians = read_checkpoint_gaussians(checkpoint, sh_degree)
    rows = exported_rows(gaussians, checkpoint)
    write_gaussians(output, gaussians.select(rows.kept))
    return ExportReport(output, checkpoint, rows.written, rows.non_finite, rows.faint)
