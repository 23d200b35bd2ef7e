"""`python -m runner` as a process: configuration errors, JSON logs, and graceful SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from dms_emulator import Emulator
from node_harness import node_env, seed_scan
from processes import is_running, outlived_the_kill

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def node_process(env: dict[str, str], log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "runner"],
            cwd=REPO_ROOT,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT)} | env,
            stderr=log,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_missing_configuration_is_one_line_and_a_nonzero_exit(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "runner"],
        cwd=REPO_ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT), "REG_SECRET": "s"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "splatter-node: configuration error: SECP256K1_PRIVHEX is required but not set"
    ]


def test_sigterm_finishes_the_running_task_claims_no_more_and_exits(
    emulator: Emulator, tasks_root: Path, tmp_path: Path
):
    port = free_port()
    running = emulator.add_task([seed_scan(emulator).manifest_cid])
    queued = emulator.add_task([seed_scan(emulator, suffix="_next").manifest_cid])
    env = node_env(emulator, tasks_root) | {
        "HEALTH_PORT": str(port),
        "LOG_FORMAT": "json",
        "FAKE_SLEEP_SECS": "1",
    }

    log_file = tmp_path / "node.log"
    with node_process(env, log_file) as node:
        emulator.wait_for(lambda: _health_ok(port), what="/health")
        emulator.wait_for(
            lambda: any(b["progress"]["stage"] == "python" for b in emulator.heartbeats(running)),
            what="the pipeline to start",
        )
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=20) == 0

    assert running in emulator.completes
    assert emulator.tasks[queued].state == "pending"
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert {"time", "level", "logger", "message"} <= entries[0].keys()
    assert any("no new tasks will be claimed" in e["message"] for e in entries)


def test_a_second_sigterm_cancels_the_running_task(emulator: Emulator, tasks_root: Path, tmp_path: Path):
    pid_file = tmp_path / "pids.json"
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])
    env = node_env(emulator, tasks_root) | {
        "HEALTH_PORT": str(free_port()),
        "FAKE_RUN_MODE": "hang",
        "FAKE_PID_FILE": str(pid_file),
    }

    log_file = tmp_path / "node.log"
    with node_process(env, log_file) as node:
        emulator.wait_for(pid_file.exists, what="the fake pipeline to start")
        node.send_signal(signal.SIGTERM)
        # signals do not queue: let the node take the first before sending the second
        emulator.wait_for(lambda: "no new tasks" in log_file.read_text(), what="the first signal to land")
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=15) == 0

    assert emulator.fails[task_id]["reason"] == "runner failed: node shutting down"
    for pid in json.loads(pid_file.read_text()):
        assert not is_running(pid)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_node_killed_outright_takes_its_pipeline_with_it(
    emulator: Emulator, tasks_root: Path, tmp_path: Path
):
    """Nothing unwinds after SIGKILL; the kernel ends run.py, as its launcher asked (its own children
    are run.py's to end: the pipeline ties them to itself the same way)."""
    pid_file = tmp_path / "pids.json"
    emulator.add_task([seed_scan(emulator).manifest_cid])
    env = node_env(emulator, tasks_root) | {
        "HEALTH_PORT": str(free_port()),
        "FAKE_RUN_MODE": "hang_quietly",
        "FAKE_PID_FILE": str(pid_file),
    }
    with node_process(env, tmp_path / "node.log") as node:
        emulator.wait_for(pid_file.exists, what="the fake pipeline to start")
        run_py, grandchild = json.loads(pid_file.read_text())
        node.kill()
        node.wait(timeout=15)
        try:
            assert not outlived_the_kill(run_py, grace_s=5)
        finally:
            for pid in (run_py, grandchild):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    for workspace in tasks_root.iterdir():  # a killed node leaves it to the next start to sweep
        shutil.rmtree(workspace)


def _health_ok(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
