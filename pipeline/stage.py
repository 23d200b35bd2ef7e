"""Runs a job's stages, resumably and partly side by side, reporting progress the runner can parse.

A stage counts as done when its completion marker (``.pipeline/<stage>.done`` under the job root)
holds the stage's recipe and every file the stage left under its outputs is still there at the size
it had: one lost frame of six hundred, or a truncated file, redoes the stage. The marker is removed
before a stage starts and written only after its expected outputs are checked, so a stage cut short
is never taken for done; a changed recipe (say, another training budget) redoes the stage. A stage
also runs when a stage it ``needs`` ran, since its inputs changed. A best-effort stage that fails is
logged and leaves no marker, so the next run retries it.

Stages start in the order given. A background stage runs in a thread beside the stages after it,
and the job waits for it before it ends; a stage with ``warm_up`` gets that call as soon as a stage
it needs starts running, so it can get ready meanwhile. One progress line is printed as each stage
starts, in that order, with the share of the job done by then (a background stage's share counts
once the job has waited for it), and a last one when every stage has ended.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.layout import STAGE_MARKERS
from splat_render.errors import PreviewInputError

log = logging.getLogger(__name__)

# A stage's failure, the machine's included (a full disk, a read-only mount); anything else is a bug.
STAGE_ERRORS = (PipelineError, PreviewInputError, OSError)


@dataclass(frozen=True)
class Stage:
    name: str
    weight: int  # share of the whole job's time, for progress
    run: Callable[[], None]
    outputs: tuple[Path, ...]  # relative to the job root; removed before the stage runs
    expected: tuple[str, ...]  # glob patterns relative to the job root, under outputs, to match afterwards
    recipe: str = ""  # what the outputs depend on besides the inputs; a change redoes the stage
    best_effort: bool = False
    needs: tuple[str, ...] = ()  # the stages whose outputs are its inputs
    background: bool = False  # runs beside the stages after it
    warm_up: Callable[[], None] | None = None  # called when a stage it needs starts running


@dataclass(frozen=True)
class _Outcome:
    error: BaseException | None
    seconds: float


def progress_line(stage: str, percent: int) -> str:
    return f"[PROGRESS] stage={stage} pct={percent}"


def start_percentages(stages: Iterable[Stage]) -> list[int]:
    """The job's percentage done when each stage starts: the share of the stages run in turn before it."""
    stages = list(stages)
    total = sum(stage.weight for stage in stages)
    done, percents = 0, []
    for stage in stages:
        percents.append(100 * done // total)
        done += 0 if stage.background else stage.weight
    return percents


def run_stages(root: Path, stages: tuple[Stage, ...], force: bool, emit: Callable[[str], None]) -> None:
    """Run or skip each stage; raise PipelineError naming the stage that failed.

    When a stage fails, background stages still running are left to the caller to stop.
    """
    ran: set[str] = set()
    in_background: list[tuple[Stage, Callable[[], _Outcome]]] = []
    for stage, percent in zip(stages, start_percentages(stages), strict=True):
        emit(progress_line(stage.name, percent))
        if not force and ran.isdisjoint(stage.needs) and is_done(root, stage):
            log.info("%s: already done, skipped", stage.name)
            continue
        ran.add(stage.name)
        for later in stages:
            if stage.name in later.needs and later.warm_up is not None:
                later.warm_up()
        _prepare(root, stage)
        if stage.background:
            in_background.append((stage, _start_thread(stage)))
        else:
            _conclude(root, stage, _attempt(stage.run))
    for stage, outcome in in_background:
        _conclude(root, stage, outcome())
    emit(progress_line("done", 100))


def is_done(root: Path, stage: Stage) -> bool:
    """The marker holds the stage's recipe, and every file it lists is there at its recorded size."""
    try:
        marker = json.loads(_marker(root, stage).read_text())
    except (OSError, ValueError):  # no marker, or one cut short or of another layout
        return False
    if not isinstance(marker, dict) or marker.get("recipe") != stage.recipe:
        return False
    return marker.get("files") == {name: _size(root / name) for name in marker.get("files", {})}


def _prepare(root: Path, stage: Stage) -> None:
    try:
        _marker(root, stage).unlink(missing_ok=True)
        for output in stage.outputs:
            _remove(root / output)
    except OSError as exc:
        raise PipelineError(f"{stage.name} failed: cannot clear its old outputs: {exc}") from exc
    log.info("%s: started", stage.name)


def _attempt(run: Callable[[], None]) -> _Outcome:
    started = time.monotonic()
    try:
        run()
    except STAGE_ERRORS as exc:
        return _Outcome(exc, time.monotonic() - started)
    return _Outcome(None, time.monotonic() - started)


def _start_thread(stage: Stage) -> Callable[[], _Outcome]:
    """Run the stage in a thread; the returned call waits for it and tells how it went."""
    outcome: list[_Outcome] = []

    def run() -> None:
        started = time.monotonic()
        try:
            outcome.append(_attempt(stage.run))
        except BaseException as exc:  # a bug: handed to the waiting thread, which raises it
            outcome.append(_Outcome(exc, time.monotonic() - started))

    thread = threading.Thread(target=run, name=f"stage-{stage.name}", daemon=True)
    thread.start()

    def wait() -> _Outcome:
        thread.join()
        return outcome[0]

    return wait


def _conclude(root: Path, stage: Stage, outcome: _Outcome) -> None:
    error = outcome.error
    if error is None:
        missing = [pattern for pattern in stage.expected if not _matches(root, pattern)]
        if missing:
            error = PipelineError(f"expected output {missing[0]} did not appear")
    if error is not None:
        if not isinstance(error, STAGE_ERRORS):
            raise error
        if not stage.best_effort:
            raise PipelineError(f"{stage.name} failed: {error}") from error
        log.warning("%s failed, the job goes on without it: %s", stage.name, error)
        return
    _write_marker(root, stage)
    log.info("%s: done in %.1f s", stage.name, outcome.seconds)


def _marker(root: Path, stage: Stage) -> Path:
    return root / STAGE_MARKERS / f"{stage.name}.done"


def _write_marker(root: Path, stage: Stage) -> None:
    """Record the recipe and every output file with its size; the marker appears whole or not at all."""
    marker = _marker(root, stage)
    tmp = marker.with_name(f"{marker.name}.tmp")
    try:
        files = {
            path.relative_to(root).as_posix(): path.stat().st_size
            for output in stage.outputs
            for path in _files(root / output)
        }
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"recipe": stage.recipe, "files": files}))
        tmp.replace(marker)
    except OSError as exc:
        raise PipelineError(f"{stage.name}: cannot write {marker.relative_to(root)}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _files(path: Path) -> list[Path]:
    """The file at ``path``, or every file under the folder there, or none."""
    if path.is_dir() and not path.is_symlink():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path] if path.is_file() else []


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _matches(root: Path, pattern: str) -> bool:
    return next(root.glob(pattern), None) is not None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
