"""Materialises a task's inputs in its workspace: the refined manifest, its recordings, and COLMAP."""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from .domain import DataMeta, DomainClient
from .transfer import SizeCap
from .workspace import is_safe_component

log = logging.getLogger(__name__)

MANIFEST_PREFIX = "refined_manifest"
RECORDING_PREFIX = "dmt_recording_"
RECORDING_EXTENSION = ".mp4"
RECORDING_TYPE = "dmt_recording_mp4"
SCAN_PREFIX = "refined_scan_"
URL_SCHEMES = ("http://", "https://")
DATASETS_DIR = Path("datasets")
RECORDING_FILE = "Frames.mp4"
MANIFEST_CAP = SizeCap(16 * 1024 * 1024, "the node's limit on a refined manifest")
"""The manifest is parsed whole in memory, so its declared size is no bound: the node sets one."""
MANIFEST_MAX_DATA_IDS = 10_000
"""Far above the recordings, and the items refined from them, that one scan has. Every hundred item ids
is a metadata call and every scan name up to two, and 16 MiB of manifest could name hundreds of
thousands: the node would make all those calls before the task could fail."""
SUFFIX_MAX_CHARS = 200
"""The manifest's suffix names every output item; a longer one is no timestamp or scan label."""
COLMAP_DIR = Path("refined/global/refined_sfm_combined")
COLMAP_FILES = (
    ("colmap_frames_bin", "frames.bin"),
    ("colmap_images_bin", "images.bin"),
    ("colmap_cameras_bin", "cameras.bin"),
    ("colmap_points3d_bin", "points3D.bin"),
    ("colmap_rigs_bin", "rigs.bin"),
)


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


def check_suffix(suffix: str) -> None:
    """Refuse a suffix no output could be named with, before anything is downloaded or trained: an
    overlong one is no label. (One with a control character, which would end an upload's form header,
    never comes this far: item names with one are refused as the metadata is read.)"""
    if len(suffix) > SUFFIX_MAX_CHARS:
        raise InputError(
            f"the refined manifest's suffix is {len(suffix)} characters long (at most {SUFFIX_MAX_CHARS}): "
            "outputs cannot be named with it"
        )


def scan_id(name: str) -> str:
    """`refined_scan_<scan>` and `dmt_recording_<scan>[.mp4]` → `<scan>`; any other name is the scan id.

    `.mp4` is dropped from every name, so a scan's folder never ends in it and a scan named with and
    without the extension is one scan."""
    stem = name.removesuffix(RECORDING_EXTENSION)
    prefix = next((p for p in (SCAN_PREFIX, RECORDING_PREFIX) if stem.startswith(p)), "")
    return stem.removeprefix(prefix)


def recording_scan(name: str) -> str | None:
    """The scan a `dmt_recording_<scan>[.mp4]` item belongs to; None for any other item."""
    return scan_id(name) if name.startswith(RECORDING_PREFIX) else None


def is_data_id(text: str) -> bool:
    """Domain items are identified by UUIDs; any other dataID is a URL or names a scan."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def item_ids(data_ids: list[str]) -> list[str]:
    """The dataIDs that are item ids (UUIDs): the only ones the domain can know by id."""
    return [text for text in (data_id.strip() for data_id in data_ids) if is_data_id(text)]


def named_scan(data_id: str) -> str | None:
    """The scan a dataID names, or None for data ids, URLs and blanks."""
    text = data_id.strip()
    if not text or text.startswith(URL_SCHEMES) or is_data_id(text):
        return None
    return scan_id(text)


def named_scans(data_ids: list[str]) -> tuple[str, ...]:
    """The distinct scans the dataIDs name, in manifest order."""
    return tuple(dict.fromkeys(scan for scan in map(named_scan, data_ids) if scan is not None))


def recording_names(scan: str) -> tuple[str, str]:
    """The names a scan's recording may have in the domain, in the order they are looked up."""
    return f"{RECORDING_PREFIX}{scan}", f"{RECORDING_PREFIX}{scan}{RECORDING_EXTENSION}"


def is_safe_folder(scan: str) -> bool:
    """A scan id names a folder under datasets/: one plain path component, not ending in `.mp4`."""
    return is_safe_component(scan) and not scan.endswith(RECORDING_EXTENSION)


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
    if len(ids) > MANIFEST_MAX_DATA_IDS:
        raise InputError(
            f"the refined manifest names {len(ids)} dataIDs (at most {MANIFEST_MAX_DATA_IDS}): no scan has "
            "that many"
        )
    return ids


def fetch_inputs(domain: DomainClient, manifest_id: str, job_root: Path) -> Inputs:
    manifest = domain.metadata_by_ids([manifest_id])
    if not manifest:
        raise InputError(f"refined manifest {manifest_id} not found in the domain")
    suffix = manifest_suffix(manifest[0].name)
    check_suffix(suffix)
    manifest_path = job_root / "refined_manifest.json"
    domain.download(manifest[0], manifest_path, MANIFEST_CAP)
    data_ids = manifest_data_ids(manifest_path)

    recordings = _recordings_by_scan(domain.metadata_by_ids(item_ids(data_ids)))
    for scan in named_scans(data_ids):
        if scan in recordings or not _usable_folder(scan, "a dataID of the manifest"):
            continue
        if (found := _find_recording(domain, scan)) is not None:
            recordings[scan] = found
    if not recordings:
        raise InputError(
            f"none of the manifest's {len(data_ids)} dataIDs is a {RECORDING_PREFIX}* recording "
            "or names a scan that has one in the domain"
        )
    for scan, item in recordings.items():
        size = domain.download(item, job_root / DATASETS_DIR / scan / RECORDING_FILE)
        log.info("downloaded recording %s (%d bytes) for scan %s", item.name, size, scan)

    colmap_names = _fetch_colmap(domain, suffix, job_root) if suffix else ()
    return Inputs(suffix=suffix, scans=tuple(recordings), colmap_names=colmap_names)


def _recordings_by_scan(items: list[DataMeta]) -> dict[str, DataMeta]:
    """The first recording item of each scan among the manifest's items."""
    recordings: dict[str, DataMeta] = {}
    for item in items:
        scan = recording_scan(item.name)
        if scan is not None and _usable_folder(scan, f"recording {item.name!r}"):
            recordings.setdefault(scan, item)
    return recordings


def _find_recording(domain: DomainClient, scan: str) -> DataMeta | None:
    """The first item found under the scan's recording names, looked up one name at a time."""
    names = recording_names(scan)
    for name in names:
        matches = domain.metadata_by_name(name, RECORDING_TYPE)
        if matches:
            return matches[0]
    log.warning("scan %r has no recording in the domain (looked for %s)", scan, " and ".join(names))
    return None


def _usable_folder(scan: str, source: str) -> bool:
    if is_safe_folder(scan):
        return True
    log.warning("skipping %s: scan id %r cannot be a folder name", source, scan)
    return False


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
        domain.download(found[name][0], staging / filename)
    (job_root / COLMAP_DIR).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(staging, job_root / COLMAP_DIR)
    return tuple(name for name, _ in wanted)
