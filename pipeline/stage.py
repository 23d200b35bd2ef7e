"""Runs a job's stages in order, resumably, reporting progress the runner can parse.

A stage counts as done when its completion marker (``.pipeline/<stage>.done`` under the job root)
holds the stage's recipe and all its expected outputs exist. The marker is removed before a stage
starts and written only after its outputs are checked, so a stage cut short is never taken for done;
a changed recipe (say, another training budget) redoes the stage. Once a stage runs, every later one
runs too, since its inputs changed. A best-effort stage that fails is logged and leaves no marker, so
the next run retries it.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.layout import STAGE_MARKERS
from splat_render.errors import PreviewInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    weight: int  # share of the whole job's time, for progress
    run: Callable[[], None]
    outputs: tuple[Path, ...]  # relative to the job root; removed before the stage runs
    expected: tuple[str, ...]  # glob patterns relative to the job root that must match afterwards
    recipe: str = ""  # what the outputs depend on besides the inputs; a change redoes the stage
    best_effort: bool = False


def progress_line(stage: str, percent: int) -> str:
    return f"[PROGRESS] stage={stage} pct={percent}"


def start_percentages(stages: Iterable[Stage]) -> list[int]:
    """The job's percentage done when each stage starts."""
    weights = [stage.weight for stage in stages]
    total = sum(weights)
    return [100 * sum(weights[:i]) // total for i in range(len(weights))]


def run_stages(root: Path, stages: tuple[Stage, ...], force: bool, emit: Callable[[str], None]) -> None:
    """Run or skip each stage in order; raise PipelineError naming the stage that failed."""
    rerun = force
    for stage, percent in zip(stages, start_percentages(stages), strict=True):
        emit(progress_line(stage.name, percent))
        if not rerun and is_done(root, stage):
            log.info("%s: already done, skipped", stage.name)
            continue
        rerun = True
        _run_stage(root, stage)
    emit(progress_line("done", 100))


def is_done(root: Path, stage: Stage) -> bool:
    marker = _marker(root, stage)
    return (
        marker.is_file()
        and marker.read_text() == stage.recipe
        and all(_matches(root, pattern) for pattern in stage.expected)
    )


def _run_stage(root: Path, stage: Stage) -> None:
    marker = _marker(root, stage)
    marker.unlink(missing_ok=True)
    for output in stage.outputs:
        _remove(root / output)
    log.info("%s: started", stage.name)
    started = time.monotonic()
    try:
        stage.run()
        missing = [pattern for pattern in stage.expected if not _matches(root, pattern)]
        if missing:
            raise PipelineError(f"expected output {missing[0]} did not appear")
    except (PipelineError, PreviewInputError) as exc:
        if not stage.best_effort:
            raise PipelineError(f"{stage.name} failed: {exc}") from exc
        log.warning("%s failed, the job goes on without it: %s", stage.name, exc)
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(stage.recipe)
    log.info("%s: done in %.1f s", stage.name, time.monotonic() - started)


def _marker(root: Path, stage: Stage) -> Path:
    return root / STAGE_MARKERS / f"{stage.name}.done"


def _matches(root: Path, pattern: str) -> bool:
    return next(root.glob(pattern), None) is not None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
