"""Helpers for driving a real node against the loopback emulator."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dms_emulator import DOMAIN_ID, Emulator

from runner.config import Config
from runner.node import Node

FAKE_RUN = Path(__file__).with_name("fake_run.py")
NODE_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082798ce3f4fdf2548b6f90"
NODE_ADDRESS = "0xfdbb6caf01414300c16ea14859fec7736d95355f"
SUFFIX = "_2024-01-02_03-04-05"
DATA_PATH = rf"/domain/api/v1/domains/{DOMAIN_ID}/data"
COLMAP_NAMES = (
    "colmap_frames_bin",
    "colmap_images_bin",
    "colmap_cameras_bin",
    "colmap_points3d_bin",
    "colmap_rigs_bin",
)


def node_env(emu: Emulator, tasks_root: Path) -> dict[str, str]:
    return {
        "DMS_BASE_URL": emu.dms_url,
        "DDS_BASE_URL": emu.dds_url,
        "SECP256K1_PRIVHEX": "0x" + NODE_KEY,
        "REG_SECRET": emu.registration_secret,
        "TASKS_ROOT": str(tasks_root),
        "SPLATTER_RUN_PY": str(FAKE_RUN),
        "HEALTH_PORT": "0",
        "HTTP_TIMEOUT_SECS": "5",
        "RETRY_INITIAL_SECS": "0.01",
        "RETRY_MAX_SECS": "0.05",
        "RETRY_ATTEMPTS": "3",
        "IDLE_POLL_SECS": "0.05",
        "KILL_GRACE_SECS": "1",
    }


@contextmanager
def running_node(config: Config) -> Iterator[Node]:
    """Run a node in a thread; on exit stop it (twice: also cancelling a task still running)."""
    node = Node(config)
    thread = threading.Thread(target=node.run, name="node-under-test")
    thread.start()
    try:
        yield node
    finally:
        node.request_stop()
        node.request_stop()
        thread.join(timeout=20)
        assert not thread.is_alive(), "node did not stop"


def run_one_task(emu: Emulator, config: Config, task_id: str, timeout: float = 20.0) -> None:
    with running_node(config):
        emu.wait_for(lambda: emu.is_settled(task_id), timeout, what=f"task {task_id} to settle")


def splat_report(emu: Emulator, name: str = f"refined_splat{SUFFIX}") -> dict[str, Any]:
    """What the fake pipeline saw, read back from the splat it uploaded."""
    item = emu.item_named(name)
    assert item is not None, f"no {name} uploaded"
    return json.loads(item.content.rstrip(b" "))


@dataclass(frozen=True)
class Manifest:
    cid: str
    id: str
    colmap: dict[str, str]  # file name → sha256


@dataclass(frozen=True)
class Scan:
    manifest_cid: str
    manifest_id: str
    recordings: dict[str, str]  # scan → sha256 of its video
    colmap: dict[str, str]  # file name → sha256


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def add_recording(emu: Emulator, name: str) -> str:
    """A recording item named name (its content says so); returns its id."""
    return emu.add_item(name, "dmt_recording_mp4", f"video of {name}".encode())


def seed_manifest(emu: Emulator, data_ids: list[str], suffix: str = SUFFIX, colmap: int = 5) -> Manifest:
    """A refined manifest listing data_ids as they are, with (the first `colmap` of) the COLMAP files
    beside it."""
    colmap_files = {}
    filenames = ("frames.bin", "images.bin", "cameras.bin", "points3D.bin", "rigs.bin")
    for prefix, filename in list(zip(COLMAP_NAMES, filenames, strict=True))[:colmap]:
        data = f"{prefix} bytes".encode()
        emu.add_item(f"{prefix}{suffix}", "colmap_bin", data)
        colmap_files[filename] = sha256(data)
    manifest = json.dumps({"dataIDs": data_ids}).encode()
    manifest_id = emu.add_item(f"refined_manifest{suffix}", "refined_manifest_json", manifest)
    return Manifest(cid=emu.cid(manifest_id), id=manifest_id, colmap=colmap_files)


def seed_scan(
    emu: Emulator,
    suffix: str = SUFFIX,
    scans: tuple[str, ...] = ("scan_a", "scan_b"),
    colmap: int = 5,
    other_items: int = 1,
) -> Scan:
    """A refined manifest listing the ids of the scans' recordings and of other_items unrelated items,
    with (the first `colmap` of) the COLMAP files beside it."""
    recordings = {scan: add_recording(emu, f"dmt_recording_{scan}") for scan in scans}
    others = [
        emu.add_item(f"refined_scan{suffix}_{n}", "refined_scan_zip", b"not a recording")
        for n in range(other_items)
    ]
    manifest = seed_manifest(emu, [*recordings.values(), *others], suffix, colmap)
    return Scan(
        manifest_cid=manifest.cid,
        manifest_id=manifest.id,
        recordings={scan: sha256(emu.items[item].content) for scan, item in recordings.items()},
        colmap=manifest.colmap,
    )
