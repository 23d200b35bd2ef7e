"""Helpers for driving a real node against the loopback emulator."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dms_emulator import Emulator

from runner.config import Config
from runner.node import Node

FAKE_RUN = Path(__file__).with_name("fake_run.py")
NODE_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082798ce3f4fdf2548b6f90"
NODE_ADDRESS = "0xfdbb6caf01414300c16ea14859fec7736d95355f"
SUFFIX = "_2024-01-02_03-04-05"
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


@dataclass(frozen=True)
class Scan:
    manifest_cid: str
    manifest_id: str
    recordings: dict[str, str]  # scan → sha256 of its video
    colmap: dict[str, str]  # file name → sha256


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seed_scan(
    emu: Emulator,
    suffix: str = SUFFIX,
    scans: tuple[str, ...] = ("scan_a", "scan_b"),
    colmap: int = 5,
    other_items: int = 1,
) -> Scan:
    """A refined manifest naming recordings and other_items unrelated items, with (the first `colmap`
    of) the COLMAP files beside it."""
    recordings = {scan: f"video of {scan}".encode() for scan in scans}
    ids = [
        emu.add_item(f"dmt_recording_{scan}", "dmt_recording_mp4", data) for scan, data in recordings.items()
    ]
    ids += [
        emu.add_item(f"refined_scan{suffix}_{n}", "refined_scan_zip", b"not a recording")
        for n in range(other_items)
    ]
    colmap_files = {}
    filenames = ("frames.bin", "images.bin", "cameras.bin", "points3D.bin", "rigs.bin")
    for prefix, filename in list(zip(COLMAP_NAMES, filenames, strict=True))[:colmap]:
        data = f"{prefix} bytes".encode()
        emu.add_item(f"{prefix}{suffix}", "colmap_bin", data)
        colmap_files[filename] = sha256(data)
    manifest = json.dumps({"dataIDs": ids}).encode()
    manifest_id = emu.add_item(f"refined_manifest{suffix}", "refined_manifest_json", manifest)
    return Scan(
        manifest_cid=emu.cid(manifest_id),
        manifest_id=manifest_id,
        recordings={scan: sha256(data) for scan, data in recordings.items()},
        colmap=colmap_files,
    )
