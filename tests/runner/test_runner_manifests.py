"""The two manifest shapes: dataIDs that are item ids of recordings, and dataIDs that name scans."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from dms_emulator import Emulator
from node_harness import DATA_PATH, SUFFIX, add_recording, run_one_task, seed_manifest, sha256, splat_report

RECORDING_TYPE = "dmt_recording_mp4"


def datasets(emu: Emulator) -> dict[str, str]:
    """The recordings run.py found in its job root: folder → sha256."""
    files = splat_report(emu)["files"]
    return {path.split("/")[1]: digest for path, digest in files.items() if path.startswith("datasets/")}


def digest(emu: Emulator, item_id: str) -> str:
    return sha256(emu.items[item_id].content)


def recording_lookups(emu: Emulator) -> list[tuple[str, str | None]]:
    """(name, data type) of every lookup by name of a recording, in order."""
    queries = [r.query for r in emu.matching("GET", DATA_PATH) if "name" in r.query]
    return [
        (q["name"][0], q.get("data_type", [None])[0])
        for q in queries
        if q["name"][0].startswith("dmt_recording_")
    ]


def id_lookups(emu: Emulator) -> list[list[str]]:
    return [r.query["ids"][0].split(",") for r in emu.matching("GET", DATA_PATH) if "ids" in r.query]


def downloads(emu: Emulator) -> Counter[str]:
    return Counter(r.path.rsplit("/", 1)[1] for r in emu.matching("GET", DATA_PATH + "/.+"))


def input_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "runner.inputs" and r.levelno == logging.WARNING
    ]


def test_scan_ids_find_their_recordings_by_name(emulator: Emulator, make_config, caplog):
    scan_a = add_recording(emulator, "dmt_recording_scan_a")
    add_recording(emulator, "dmt_recording_scan_a_2")  # the server's loose name match returns it too
    scan_b = add_recording(emulator, "dmt_recording_scan_b.mp4")
    emulator.add_item("dmt_recording_scan_c", "dmt_recording_zip", b"same name, other type")
    scan_c = add_recording(emulator, "dmt_recording_scan_c.mp4")
    manifest = seed_manifest(
        emulator, ["scan_a", "refined_scan_scan_b", "dmt_recording_scan_c", "dmt_recording_scan_a.mp4"]
    )
    task_id = emulator.add_task([manifest.cid])

    run_one_task(emulator, make_config(), task_id)

    assert task_id in emulator.completes
    assert datasets(emulator) == {
        "scan_a": digest(emulator, scan_a),
        "scan_b": digest(emulator, scan_b),
        "scan_c": digest(emulator, scan_c),
    }
    assert recording_lookups(emulator) == [
        ("dmt_recording_scan_a", RECORDING_TYPE),
        ("dmt_recording_scan_b", RECORDING_TYPE),
        ("dmt_recording_scan_b.mp4", RECORDING_TYPE),
        ("dmt_recording_scan_c", RECORDING_TYPE),
        ("dmt_recording_scan_c.mp4", RECORDING_TYPE),
    ]
    assert id_lookups(emulator) == [[manifest.id]]  # names are never asked for as ids
    assert all(downloads(emulator)[item] == 1 for item in (scan_a, scan_b, scan_c))
    assert all(r.status < 400 for r in emulator.requests if r.path.startswith("/domain/"))
    assert input_warnings(caplog) == []


def test_a_scan_without_a_recording_is_skipped_with_a_warning(emulator: Emulator, make_config, caplog):
    scan_a = add_recording(emulator, "dmt_recording_scan_a")
    task_id = emulator.add_task([seed_manifest(emulator, ["scan_gone", "scan_a"]).cid])

    run_one_task(emulator, make_config(), task_id)

    assert task_id in emulator.completes
    assert datasets(emulator) == {"scan_a": digest(emulator, scan_a)}
    assert input_warnings(caplog) == [
        "scan 'scan_gone' has no recording in the domain "
        "(looked for dmt_recording_scan_gone and dmt_recording_scan_gone.mp4)"
    ]


def test_scans_without_any_recording_fail_the_task(emulator: Emulator, make_config):
    add_recording(emulator, "dmt_recording_scan_a")  # in the domain, but the manifest names other scans
    task_id = emulator.add_task([seed_manifest(emulator, ["scan_gone", "refined_scan_scan_lost"]).cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.fails[task_id]["reason"] == (
        "runner failed: inputs: none of the manifest's 2 dataIDs is a dmt_recording_* recording "
        "or names a scan that has one in the domain"
    )
    assert [name for name, _ in recording_lookups(emulator)] == [
        "dmt_recording_scan_gone",
        "dmt_recording_scan_gone.mp4",
        "dmt_recording_scan_lost",
        "dmt_recording_scan_lost.mp4",
    ]
    assert emulator.matching("POST", DATA_PATH) == []


def test_a_manifest_mixing_item_ids_and_scan_ids(emulator: Emulator, make_config, caplog):
    listed = add_recording(emulator, "dmt_recording_scan_a")
    listed_with_extension = add_recording(emulator, "dmt_recording_scan_b.mp4")
    listed_unsafe = add_recording(emulator, "dmt_recording_.hidden")
    named = add_recording(emulator, "dmt_recording_scan_c")
    other = emulator.add_item(f"refined_scan{SUFFIX}_0", "refined_scan_zip", b"not a recording")
    data_ids = [
        listed,
        "scan_a",  # already listed: not looked up again
        listed_with_extension,
        "dmt_recording_scan_b",  # the same scan as the listed .mp4 recording
        other,
        listed_unsafe,
        emulator.cid(named),  # a URL names no scan
        "scan_c",
        "../escape",
    ]
    manifest = seed_manifest(emulator, data_ids)
    task_id = emulator.add_task([manifest.cid])

    run_one_task(emulator, make_config(), task_id)

    assert task_id in emulator.completes
    assert datasets(emulator) == {
        "scan_a": digest(emulator, listed),
        "scan_b": digest(emulator, listed_with_extension),
        "scan_c": digest(emulator, named),
    }
    assert id_lookups(emulator) == [[manifest.id], [listed, listed_with_extension, other, listed_unsafe]]
    assert recording_lookups(emulator) == [("dmt_recording_scan_c", RECORDING_TYPE)]
    assert all(downloads(emulator)[item] == 1 for item in (listed, listed_with_extension, named))
    assert downloads(emulator)[listed_unsafe] == 0
    assert input_warnings(caplog) == [
        "skipping recording 'dmt_recording_.hidden': scan id '.hidden' cannot be a folder name",
        "skipping a dataID of the manifest: scan id '../escape' cannot be a folder name",
    ]
    inputs_event = next(
        e for b in emulator.heartbeats(task_id) for e in b["events"] if e["message"] == "inputs materialized"
    )
    assert inputs_event["scans"] == ["scan_a", "scan_b", "scan_c"]
