"""One splatter job: checks its inputs, then runs the eight stages (see ``stage``).

After training, the preview renders in the background while export, rotate and convert run in turn,
and the SOG compresses beside convert; the renderer starts with training, to import meanwhile (see
``preview``).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pipeline import layout
from pipeline.commands import run_command
from pipeline.frames import Dataset, extract_all_frames
from pipeline.inputs import check_colmap_model, check_frames_match_colmap, colmap_image_names, find_datasets
from pipeline.lock import job_lock
from pipeline.nerfstudio import process_data_command, train_command
from pipeline.preview import DEFAULT_RENDERER, PREVIEW_FILES, REPORT_FILES, PreviewRenderer
from pipeline.rotate import rotate_ply
from pipeline.sog import compress_sog
from pipeline.splat_format import convert_ply_to_splat
from pipeline.stage import Stage, run_stages
from splat_render.export import export_splat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOptions:
    root: Path  # absolute
    force: bool = False
    train_iterations: int | None = None  # None: splatfacto's own budget
    preview_timeout_s: float = 600.0
    preview_renderer: tuple[str, ...] = DEFAULT_RENDERER  # command prefix; options naming the files follow


def run_job(options: JobOptions, emit: Callable[[str], None]) -> None:
    """Run the job's stages; raise PipelineError on bad inputs, a failed stage or another run of the
    same job root."""
    with job_lock(options.root):
        datasets = find_datasets(options.root)
        check_colmap_model(options.root)
        frames = colmap_image_names(options.root)
        with PreviewRenderer(options.root, options.preview_renderer, options.preview_timeout_s) as preview:
            run_stages(options.root, job_stages(options, datasets, frames, preview), options.force, emit)


def job_stages(
    options: JobOptions, datasets: tuple[Dataset, ...], frames: frozenset[str], preview: PreviewRenderer
) -> tuple[Stage, ...]:
    """``frames``: the frames the COLMAP model names, the only ones extracted."""
    root = options.root
    filmed = [d.name for d in datasets if any(name.startswith(f"{d.name}_") for name in frames)]
    process, train = process_data_command(), train_command(options.train_iterations)

    def process_data() -> None:
        check_frames_match_colmap(root, frames)
        run_command(process, cwd=root)

    def export() -> None:
        """In this process: a dump of the checkpoint's tensors with torch, which the job has imported
        already (rotate and convert use it), so a child process would only add its start-up."""
        report = export_splat(root / layout.CONFIG, root / layout.SPLAT_PLY)
        log.info(
            "export: %d gaussians from %s (dropped %d with non-finite values, %d fainter than 1/255)",
            report.written, report.checkpoint.name, report.non_finite, report.faint,
        )  # fmt: skip

    return (
        Stage(
            "extract_frames",
            weight=5,
            run=partial(extract_all_frames, datasets, root / layout.FRAMES, frames),
            outputs=(layout.FRAMES,),
            expected=tuple(f"{layout.FRAMES}/{glob.escape(name)}_*.jpg" for name in filmed),
            recipe=" ".join(d.name for d in datasets) + " " + _digest(frames),
        ),
        Stage(
            "process_data",
            weight=5,
            run=process_data,
            outputs=(layout.NERFSTUDIO_DATA,),
            expected=(str(layout.TRANSFORMS),),
            recipe=shlex.join(process),
            needs=("extract_frames",),
        ),
        Stage(
            "train",
            weight=75,
            run=partial(run_command, train, cwd=root),
            outputs=(layout.TRAIN_RUN,),
            expected=(str(layout.CONFIG), f"{layout.CHECKPOINTS}/step-*.ckpt"),
            recipe=shlex.join(train),
            needs=("process_data",),
        ),
        Stage(
            "preview",
            weight=5,
            run=preview.render,
            outputs=(*PREVIEW_FILES.values(), *REPORT_FILES.values()),
            expected=tuple(str(path) for path in PREVIEW_FILES.values()),
            best_effort=True,
            needs=("train",),
            background=True,
            warm_up=preview.warm_up,
        ),
        Stage(
            "export",
            weight=5,
            run=export,
            outputs=(layout.SPLAT_PLY,),
            expected=(str(layout.SPLAT_PLY),),
            needs=("train",),
        ),
        Stage(
            "rotate",
            weight=2,
            run=partial(rotate_ply, root / layout.SPLAT_PLY, root / layout.ROTATED_PLY),
            outputs=(layout.ROTATED_PLY,),
            expected=(str(layout.ROTATED_PLY),),
            needs=("export",),
        ),
        Stage(
            "sog",
            weight=2,
            run=partial(compress_sog, root / layout.ROTATED_PLY, root / layout.SOG_FILE),
            outputs=(layout.SOG_FILE,),
            expected=(str(layout.SOG_FILE),),
            best_effort=True,
            needs=("rotate",),
            background=True,
        ),
        Stage(
            "convert",
            weight=1,
            run=partial(convert_ply_to_splat, root / layout.ROTATED_PLY, root / layout.SPLAT_FILE),
            outputs=(layout.SPLAT_FILE,),
            expected=(str(layout.SPLAT_FILE),),
            needs=("rotate",),
        ),
    )


def _digest(names: frozenset[str]) -> str:
    """A short fingerprint of a set of names: the frames to extract change with the COLMAP model."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]
