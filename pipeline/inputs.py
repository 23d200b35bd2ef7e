"""What a job root must hold, checked before the steps that need it.

Each check raises a one-line PipelineError naming the missing or inconsistent input, so that a bad
job fails in seconds instead of after an hour of training or deep inside a nerfstudio traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pipeline.colmap import CorruptModel, check_cameras, check_points, image_names
from pipeline.errors import PipelineError
from pipeline.frames import Dataset
from pipeline.layout import COLMAP_FILES, COLMAP_MODEL, DATASET_VIDEO, DATASETS, FRAMES

T = TypeVar("T")


def find_datasets(root: Path) -> tuple[Dataset, ...]:
    """Every folder of ``datasets/``, in name order; each must hold its ``Frames.mp4``."""
    folder = root / DATASETS
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not names:
        raise PipelineError(f"no datasets: {DATASETS}/ holds no dataset folders")
    datasets = tuple(Dataset(name, folder / name / DATASET_VIDEO) for name in names)
    missing = [d for d in datasets if not d.video.is_file()]
    if missing:
        raise PipelineError(
            f"dataset {missing[0].name} has no {DATASET_VIDEO} ({len(missing)} dataset(s) without one)"
        )
    return datasets


def check_colmap_model(root: Path) -> None:
    """The COLMAP files are there, and cameras.bin and points3D.bin hold what their counts say (which
    nerfstudio's readers take at their word) and points3D.bin finite points; images.bin is walked by
    ``colmap_image_names``."""
    missing = [name for name in COLMAP_FILES if not (root / COLMAP_MODEL / name).is_file()]
    if missing:
        raise PipelineError(f"missing COLMAP files in {COLMAP_MODEL}/: {', '.join(missing)}")
    _read_colmap(root, "cameras.bin", check_cameras)
    _read_colmap(root, "points3D.bin", check_points)


def colmap_image_names(root: Path) -> frozenset[str]:
    """The names of the images in images.bin, each of a finite pose: the frames the job needs."""
    names = frozenset(_read_colmap(root, "images.bin", image_names))
    if not names:
        raise PipelineError(f"{COLMAP_MODEL / 'images.bin'} holds no images")
    odd = sorted(name for name in names if not _is_plain_file_name(name))
    if odd:  # a path would reach outside Frames/ (ns-process-data opens what images.bin names)
        raise PipelineError(
            f"{COLMAP_MODEL / 'images.bin'} names {len(odd)} images that are no plain file names "
            f"(first: {odd[0][:80]!r}); frames are named <dataset>_<NNNNNN>.jpg"
        )
    return names


def _read_colmap(root: Path, name: str, read: Callable[[Path], T]) -> T:
    try:
        return read(root / COLMAP_MODEL / name)
    except (CorruptModel, OSError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise PipelineError(f"cannot read {COLMAP_MODEL / name}: {why}") from exc


def _is_plain_file_name(name: str) -> bool:
    return name not in ("", ".", "..") and not any(c in name for c in "/\\") and name.isprintable()


def check_frames_match_colmap(root: Path, names: frozenset[str]) -> None:
    """Every image of images.bin (``names``, from colmap_image_names) must be an extracted frame, or
    ns-process-data fails obscurely."""
    missing = sorted(name for name in names if not (root / FRAMES / name).is_file())
    if missing:
        example = min((p.name for p in (root / FRAMES).glob("*.jpg")), default="none")
        raise PipelineError(
            f"{len(missing)} of {len(names)} images in images.bin are not among the extracted frames "
            f"(first missing: {missing[0]}; first frame in {FRAMES}/: {example})"
        )
