"""Materialises a task's inputs in its workspace: the refined manifest, its recordings, and COLMAP."""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .domain import DataMeta, DomainClient

log = logging.getLogger(__name__)

MANIFEST_PREFIX = "refined_manifest"
RECORDING_PREFIX = "dmt_recording_"
DATASETS_DIR = Path("datasets")
RECORDING_FILE = "Frames.mp4"
COLMAP_DIR = Path("refined/global/refined_sfm_combined")
COLMAP_FILES = (
    ("colmap_frames_bin", "frames.bin"),
    ("colmap_images_bin", "images.bin"),
    ("colmap_cameras_bin", "cameras.bin"),
    ("colmap_points3d_bin", "points3D.bin"),
    ("colmap_rigs_bin", "rigs.bin"),
)
_SAFE_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class InputError(RuntimeError):
    """The task's inputs cannot make a job."""


@dataclass(frozen=True)
class Inputs:
    suffix: str
    scans: tuple[str, ...]
    colmap_names: tuple[str, ...]
    """The five COLMAP items written, or empty when they were not all available."""


def manifest_suffix(name: str) -> str:
    """`refined_manifest_2024-01-02_03-04-05` → `_2024-01-02_03-04-05`; other names have none."""
    return name.removeprefix(MANIFEST_PREFIX) if name.startswith(MANIFEST_PREFIX) else ""


def recording_scan(name: str) -> str | None:
    """The scan a `dmt_recording_<scan>` item belongs to, if the name is one and safe as a folder."""
    if not name.startswith(RECORDING_PREFIX):
        return None
    scan = name.removeprefix(RECORDING_PREFIX)
    return scan if _SAFE_FOLDER.match(scan) else None


def colmap_items(suffix: str) -> tuple[tuple[str, str], ...]:
    """(domain item name, file name) of each COLMAP binary for this manifest suffix."""
    return tuple((f"{prefix}{suffix}", filename) for prefix, filename in COLMAP_FILES)


def manifest_data_ids(manifest_path: Path) -> list[str]:
    try:
        ids = json.loads(manifest_path.read_text()).get("dataIDs")
    except (ValueError, AttributeError) as exc:
        raise InputError(f"the refined manifest is not a JSON object: {exc}") from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InputError("the refined manifest has no dataIDs list of strings")
    return ids


def fetch_inputs(domain: DomainClient, manifest_id: str, job_root: Path) -> Inputs:
    manifest = domain.metadata_by_ids([manifest_id])
    if not manifest:
        raise InputError(f"refined manifest {manifest_id} not found in the domain")
    suffix = manifest_suffix(manifest[0].name)
    manifest_path = job_root / "refined_manifest.json"
    domain.download(manifest_id, manifest_path)
    data_ids = manifest_data_ids(manifest_path)

    recordings = _recordings_by_scan(domain.metadata_by_ids(data_ids))
    if not recordings:
        raise InputError(f"none of the manifest's {len(data_ids)} dataIDs is a {RECORDING_PREFIX}* recording")
    for scan, item in recordings.items():
        size = domain.download(item.id, job_root / DATASETS_DIR / scan / RECORDING_FILE)
        log.info("downloaded recording %s (%d bytes)", item.name, size)

    colmap_names = _fetch_colmap(domain, suffix, job_root) if suffix else ()
    return Inputs(suffix=suffix, scans=tuple(recordings), colmap_names=colmap_names)


def _recordings_by_scan(items: list[DataMeta]) -> dict[str, DataMeta]:
    recordings: dict[str, DataMeta] = {}
    for item in items:
        scan = recording_scan(item.name)
        if scan is None:
            if item.name.startswith(RECORDING_PREFIX):
                log.warning("skipping recording %r: its scan name cannot be a folder name", item.name)
            continue
        recordings.setdefault(scan, item)
    return recordings


def _fetch_colmap(domain: DomainClient, suffix: str, job_root: Path) -> tuple[str, ...]:
    """Download the five COLMAP binaries into place together, or none when any is missing."""
    wanted = colmap_items(suffix)
    found = {name: domain.metadata_by_name(name) for name, _ in wanted}
    missing = [name for name, matches in found.items() if not matches]
    if missing:
        log.warning("COLMAP inputs incomplete (missing %s); the pipeline will run without them", missing)
        return ()
    staging = job_root / COLMAP_DIR.with_name(COLMAP_DIR.name + ".part")
    for name, filename in wanted:
        domain.download(found[name][0].id, staging / filename)
    (job_root / COLMAP_DIR).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(staging, job_root / COLMAP_DIR)
    return tuple(name for name, _ in wanted)
