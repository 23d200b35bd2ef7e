"""One splatter job: checks its inputs, then runs the seven stages in order (see ``stage``)."""

from __future__ import annotations

import glob
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pipeline import layout
from pipeline.commands import run_command
from pipeline.frames import Dataset, extract_all_frames
from pipeline.inputs import check_colmap_model, check_frames_match_colmap, find_datasets
from pipeline.nerfstudio import EXPORT_ENVIRONMENT, export_command, process_data_command, train_command
from pipeline.preview import DEFAULT_RENDERER, render_preview
from pipeline.rotate import rotate_ply
from pipeline.splat_format import convert_ply_to_splat
from pipeline.stage import Stage, run_stages


@dataclass(frozen=True)
class JobOptions:
    root: Path  # absolute
    force: bool = False
    train_iterations: int | None = None  # None: splatfacto's own budget
    preview_timeout_s: float = 600.0
    preview_renderer: tuple[str, ...] = DEFAULT_RENDERER  # command prefix; options naming the files follow


def run_job(options: JobOptions, emit: Callable[[str], None]) -> None:
    """Run the job's stages; raise PipelineError on bad inputs or a failed stage."""
    datasets = find_datasets(options.root)
    check_colmap_model(options.root)
    run_stages(options.root, job_stages(options, datasets), options.force, emit)


def job_stages(options: JobOptions, datasets: tuple[Dataset, ...]) -> tuple[Stage, ...]:
    root = options.root
    process, train, export = process_data_command(), train_command(options.train_iterations), export_command()

    def process_data() -> None:
        check_frames_match_colmap(root)
        run_command(process, cwd=root)

    return (
        Stage(
            "extract_frames",
            weight=5,
            run=partial(extract_all_frames, datasets, root / layout.FRAMES),
            outputs=(layout.FRAMES,),
            expected=tuple(f"{layout.FRAMES}/{glob.escape(d.name)}_*.jpg" for d in datasets),
            recipe=" ".join(d.name for d in datasets),
        ),
        Stage(
            "process_data",
            weight=5,
            run=process_data,
            outputs=(layout.NERFSTUDIO_DATA,),
            expected=(str(layout.TRANSFORMS),),
            recipe=shlex.join(process),
        ),
        Stage(
            "train",
            weight=75,
            run=partial(run_command, train, cwd=root),
            outputs=(layout.TRAIN_RUN,),
            expected=(str(layout.CONFIG), f"{layout.CHECKPOINTS}/step-*.ckpt"),
            recipe=shlex.join(train),
        ),
        Stage(
            "export",
            weight=5,
            run=partial(run_command, export, cwd=root, extra_env=EXPORT_ENVIRONMENT),
            outputs=(layout.SPLAT_PLY,),
            expected=(str(layout.SPLAT_PLY),),
            recipe=shlex.join(export),
        ),
        Stage(
            "rotate",
            weight=2,
            run=partial(rotate_ply, root / layout.SPLAT_PLY, root / layout.ROTATED_PLY),
            outputs=(layout.ROTATED_PLY,),
            expected=(str(layout.ROTATED_PLY),),
        ),
        Stage(
            "convert",
            weight=3,
            run=partial(convert_ply_to_splat, root / layout.ROTATED_PLY, root / layout.SPLAT_FILE),
            outputs=(layout.SPLAT_FILE,),
            expected=(str(layout.SPLAT_FILE),),
        ),
        Stage(
            "preview",
            weight=5,
            run=partial(render_preview, root, options.preview_renderer, options.preview_timeout_s),
            outputs=(layout.PREVIEW, layout.POSTER),
            expected=(str(layout.PREVIEW), str(layout.POSTER)),
            best_effort=True,
        ),
    )
