"""The quality and coverage report of a trained splat: ``quality.json`` and the coverage picture.

Computed in the preview's process, from the model it loaded and the plan it made: the quality of
our renders against the run's images (``quality``), how the capture covered the content
(``coverage``), the preview's path and its view support. Both files are published together or not
at all; the README documents the JSON's schema.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splat_render.coverage import Coverage, measure_coverage, tinted
from splat_render.gaussians import Gaussians
from splat_render.orbit import CameraPath
from splat_render.outputs import published_together
from splat_render.quality import Evaluation
from splat_render.raster import RenderSettings, render_frames
from splat_render.sheet import write_image
from splat_render.views import pinhole_cameras

SCHEMA = 1


@dataclass(frozen=True)
class ReportInputs:
    """What the report reads: the model, how it was loaded, and the preview's plan."""

    gaussians: Gaussians  # every usable gaussian of the model
    drawn: Gaussians  # those the preview draws
    settings: RenderSettings
    step: int | None  # the checkpoint's step; None for a PLY alone
    non_finite: int
    analysis: Any  # SceneAnalysis
    path: CameraPath
    poster_index: int


def write_report(
    inputs: ReportInputs,
    evaluation: Evaluation | None,
    quality_out: Path | None,
    coverage_out: Path | None,
) -> dict[str, Any]:
    """Measure, then publish ``quality_out`` (JSON) and ``coverage_out`` (the picture) together; the
    report as written."""
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    if evaluation is not None:
        quality = evaluation.measure(inputs.gaussians, inputs.settings)
    else:
        quality = {"held_out": None, "training": None, "note": "no training run to measure (a PLY alone)"}
    seconds["quality"] = round(time.perf_counter() - started, 3)
    poster_c2w = inputs.path.c2w[inputs.poster_index]
    coverage = measure_coverage(inputs.analysis, inputs.gaussians, poster_c2w)
    picture = None
    if coverage is not None and coverage_out is not None:
        picture = coverage_picture(inputs, coverage)
    seconds["coverage"] = round(time.perf_counter() - started - seconds["quality"], 3)
    report = {
        "schema": SCHEMA,
        "gaussians": len(inputs.gaussians),
        "drawn": len(inputs.drawn),
        "non_finite": inputs.non_finite,
        "training_steps": None if inputs.step is None else inputs.step + 1,
        "device": str(inputs.gaussians.device),
        "quality": quality,
        "coverage": None if coverage is None else coverage.figures(),
        "coverage_picture": None if picture is None else Path(coverage_out).name,
        "preview": {
            "path": inputs.path.kind,
            "reason": inputs.path.reason,
            "frames": inputs.path.frames,
            "poster_frame": inputs.poster_index,
            "support": inputs.path.figures,
        },
        "seconds": seconds,
    }
    if coverage is None:
        report["coverage_note"] = "no training cameras: coverage cannot be told (a PLY alone)"
    files = [path for path in (quality_out, coverage_out if picture is not None else None) if path]
    with published_together(files) as temps:
        if picture is not None:
            write_image(picture, temps[coverage_out])
        if quality_out is not None:
            temps[quality_out].write_text(json.dumps(report, indent=2) + "\n")
    return report


def coverage_picture(inputs: ReportInputs, coverage: Coverage) -> np.ndarray:
    """The poster's frame, [H,W,3] uint8, with thinly seen content tinted."""
    path, index = inputs.path, inputs.poster_index
    device = inputs.drawn.device
    c2w = torch.as_tensor(path.c2w[index : index + 1], dtype=torch.float32, device=device)
    camera = pinhole_cameras(c2w, path.focal, path.width, path.height).to(device)
    cuts = None
    if path.cuts is not None:
        cuts = torch.as_tensor(path.cuts[index : index + 1], dtype=torch.float32, device=device)
    gaussians = tinted(inputs.drawn, coverage, inputs.analysis.frame)
    [frame] = render_frames(gaussians, camera, inputs.settings, 1, cuts)
    return (frame[0] * 255).round().to(torch.uint8).cpu().numpy()
