"""A hostile or broken DMS, domain server or pipeline against the real node: what it may not do."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from dms_emulator import DOMAIN_ID, Emulator, Fault
from node_harness import DATA_PATH, NODE_KEY, SUFFIX, add_recording, run_one_task, seed_manifest, seed_scan


@pytest.fixture
def other_server() -> Iterator[Emulator]:
    """A second server, on another port: not the lease's domain server."""
    emu = Emulator()
    yield emu
    emu.close()


def recording_path(emu: Emulator, scan: str = "scan_a") -> str:
    item = next(i for i in emu.items.values() if i.name == f"dmt_recording_{scan}")
    return f"{DATA_PATH}/{item.id}"


def add_runnable_task(emu: Emulator) -> str:
    """A well-formed task queued after a hostile one: the node must go on to it."""
    return emu.add_task([seed_scan(emu, suffix="_next").manifest_cid])


HOSTILE_TASK_IDS = ("../other-node/victim", "..", ".hidden", "a/b", "nul\x00byte", "line\nbreak", "x" * 129)


def test_task_ids_that_are_not_one_safe_path_component_fail_and_nothing_is_removed(
    emulator: Emulator, make_config, tmp_path: Path, tasks_root: Path
):
    tasks_root.mkdir()  # as on a node that has run tasks before
    victim = tmp_path / "other-node" / "victim"  # another node's workspace beside TASKS_ROOT
    victim.mkdir(parents=True)
    (victim / ".splatter-workspace").touch()
    manifest = seed_scan(emulator).manifest_cid
    for task_id in HOSTILE_TASK_IDS:
        emulator.add_task([manifest], task_id=task_id)
    runnable = add_runnable_task(emulator)

    run_one_task(emulator, make_config(), runnable)

    assert (victim / ".splatter-workspace").is_file()
    for task_id in HOSTILE_TASK_IDS:
        assert emulator.fails[task_id]["reason"] == (
            f"runner failed: workspace: task id {task_id!r} cannot name a workspace folder: it must be 1 "
            "to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    assert runnable in emulator.completes


def test_the_domain_token_goes_only_to_the_lease_s_domain_server(
    emulator: Emulator, other_server: Emulator, make_config
):
    elsewhere = seed_scan(other_server)
    hostile = emulator.add_task([elsewhere.manifest_cid])
    runnable = add_runnable_task(emulator)

    run_one_task(emulator, make_config(), runnable)

    assert other_server.requests == []
    assert emulator.fails[hostile]["reason"] == (
        f"runner failed: inputs: {other_server.domain_url}/api/v1/domains/{DOMAIN_ID}/data is not on the "
        f"lease's domain server {emulator.domain_url}; the domain token is sent nowhere else"
    )
    assert runnable in emulator.completes


def test_quotes_and_backslashes_in_names_are_quoted_in_upload_forms(emulator: Emulator, make_config):
    suffix = '_x"; data-type="evil\\'
    task_id = emulator.add_task([seed_scan(emulator, suffix=suffix).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert task_id in emulator.completes
    for name, data_type in (
        ("refined_splat", "splat_data"),
        ("refined_splat_sog", "splat_data_sog"),
        ("refined_splat_preview_video", "splat_preview_video"),
        ("refined_splat_preview_image", "splat_preview_image"),
    ):
        item = emulator.item_named(f"{name}{suffix}")  # the name as it was, nothing injected
        assert item is not None and item.data_type == data_type


INJECTED_SUFFIX = "_x\r\nX-Injected: 1"
"""A suffix that would end an upload's form header and start one of its own."""


@pytest.mark.parametrize(
    ("suffix", "why"),
    [
        (
            INJECTED_SUFFIX,
            "the domain server's reply for metadata of 1 items is unusable: item 1's name "
            f"{'refined_manifest' + INJECTED_SUFFIX!r} has a control character",
        ),
        (
            "_" + "x" * 300,
            "the refined manifest's suffix is 301 characters long (at most 200): outputs cannot be named "
            "with it",
        ),
    ],
    ids=["control-characters", "overlong"],
)
def test_a_suffix_no_output_can_be_named_with_fails_the_task_before_any_download(
    emulator: Emulator, make_config, suffix: str, why: str
):
    task_id = emulator.add_task([seed_scan(emulator, suffix=suffix).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.fails[task_id]["reason"] == f"runner failed: inputs: {why}"
    assert emulator.matching("GET", DATA_PATH + "/.+") == []  # not even the manifest was downloaded
    assert emulator.matching("POST", DATA_PATH) == []


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (
            b'{"data": [{"id": "%s", "name": "refined_manifest", "size": NaN}]}',
            "item 1's size nan is no whole number of bytes",
        ),
        (b'{"data": {"id": "%s"}}', "its data {'id': '%s'} is no list"),
        (b"<html>%s</html>", "it is no JSON object"),
    ],
    ids=["size-NaN", "data-not-a-list", "not-JSON"],
)
def test_an_unusable_metadata_reply_fails_the_task_on_one_line_and_the_node_goes_on(
    emulator: Emulator, make_config, caplog, reply: bytes, why: str
):
    scan = seed_scan(emulator)
    reply = reply.replace(b"%s", scan.manifest_id.encode())
    emulator.inject(Fault("GET", DATA_PATH, query_has="ids", body=reply, times=1))
    hostile = emulator.add_task([scan.manifest_cid])
    runnable = add_runnable_task(emulator)

    run_one_task(emulator, make_config(), runnable)

    assert emulator.fails[hostile]["reason"] == (
        "runner failed: inputs: the domain server's reply for metadata of 1 items is unusable: "
        + why.replace("%s", scan.manifest_id)
    )
    assert not any(record.exc_info for record in caplog.records)  # an expected failure: no traceback
    assert emulator.matching("GET", f"{DATA_PATH}/{scan.manifest_id}") == []
    assert runnable in emulator.completes


def test_an_uploaded_item_id_with_a_line_break_fails_the_task_and_forges_no_log_line(
    emulator: Emulator, make_config, caplog
):
    """The id an upload's reply names is logged and reported: a line break in it would start a line."""
    caplog.set_level(logging.INFO)
    splat_form = f'name="refined_splat{SUFFIX}"'.encode()
    forged = {"id": "abc\nERROR forged line", "name": f"refined_splat{SUFFIX}", "data_type": "splat_data"}
    emulator.inject(
        Fault("POST", DATA_PATH, body=json.dumps({"data": [forged]}).encode(), body_has=splat_form)
    )
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.fails[task_id]["reason"] == (
        f"runner failed: upload: the domain server's reply for upload of refined_splat{SUFFIX} is unusable: "
        "item 1's id 'abc\\nERROR forged line' has a control character"
    )
    assert not any("\n" in record.getMessage() for record in caplog.records)


SLOW = {"TRANSFER_MIN_BYTES_PER_SEC": "1000", "TRANSFER_RATE_WINDOW_SECS": "0.5"}
LATE = {"TRANSFER_DEADLINE_SECS": "1", "TRANSFER_MIN_BYTES_PER_SEC": "0"}
TOO_SLOW = r"moved \d+ bytes in [\d.]+ s, under the minimum of 1000 bytes/s \(TRANSFER_MIN_BYTES_PER_SEC\)"
TOO_LATE = r"did not finish within 1 s \(TRANSFER_DEADLINE_SECS\)"


@pytest.mark.parametrize(
    ("limits", "why"), [(SLOW, TOO_SLOW), (LATE, TOO_LATE)], ids=["min-rate", "deadline"]
)
def test_a_dripping_download_fails_within_its_limits_and_the_node_goes_on(
    emulator: Emulator, make_config, limits, why
):
    scan = seed_scan(emulator)
    recording = recording_path(emulator)
    emulator.inject(Fault("GET", recording, drip_secs=0.1))  # ~3 s for the whole recording
    hostile = emulator.add_task([scan.manifest_cid])
    runnable = add_runnable_task(emulator)

    run_one_task(emulator, make_config(**limits), runnable)

    reason = emulator.fails[hostile]["reason"]
    item_id = recording.rsplit("/", 1)[1]
    assert reason.startswith(f"runner failed: inputs: download of dmt_recording_scan_a ({item_id}) ")
    assert len(emulator.matching("GET", recording)) == 1  # not retried
    assert re.fullmatch(rf"runner failed: inputs: download of .+? \({item_id}\) {why}", reason)
    assert runnable in emulator.completes


def test_a_dripping_upload_reply_fails_the_task_within_the_deadline(emulator: Emulator, make_config):
    splat_form = f'name="refined_splat{SUFFIX}"'.encode()
    emulator.inject(Fault("POST", DATA_PATH, drip_secs=0.1, times=1, body_has=splat_form))  # reply ~20 s
    hostile = emulator.add_task([seed_scan(emulator).manifest_cid])
    runnable = add_runnable_task(emulator)

    run_one_task(emulator, make_config(**LATE), runnable)

    assert emulator.fails[hostile]["reason"] == (
        f"runner failed: upload: upload of refined_splat{SUFFIX} did not finish within 1 s "
        "(TRANSFER_DEADLINE_SECS)"
    )
    assert runnable in emulator.completes


def test_a_dripping_sog_upload_reply_leaves_the_task_to_complete_without_it(emulator: Emulator, make_config):
    emulator.inject(Fault("POST", DATA_PATH, drip_secs=0.1, times=1))  # the SOG's reply: the first upload
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(**LATE), task_id)

    sog = emulator.item_named(f"refined_splat_sog{SUFFIX}")  # stored; its reply never came whole
    assert sog.id not in emulator.completes[task_id]["output_cids"]
    assert len(emulator.completes[task_id]["output_cids"]) == 4  # the splat, video, poster, coverage
    final = emulator.heartbeats(task_id)[-1]["progress"]
    assert final["sog_note"] == (
        f"SOG upload failed (TransferAborted: upload of refined_splat_sog{SUFFIX} did not finish within 1 s "
        "(TRANSFER_DEADLINE_SECS)); completing without it"
    )


@pytest.mark.parametrize("declare_length", [True, False], ids=["declared", "undeclared"])
def test_a_recording_far_larger_than_its_metadata_is_cut_off(
    emulator: Emulator, make_config, declare_length: bool
):
    scan = seed_scan(emulator)
    recording = recording_path(emulator)
    item_id = recording.rsplit("/", 1)[1]
    declared = len(emulator.items[item_id].content)
    emulator.inject(Fault("GET", recording, body=b"\0" * 50_000_000, declare_length=declare_length))
    hostile = emulator.add_task([scan.manifest_cid])
    runnable = add_runnable_task(emulator)

    run_one_task(emulator, make_config(), runnable)

    assert emulator.fails[hostile]["reason"] == (
        f"runner failed: inputs: download of dmt_recording_scan_a ({item_id}) is larger than its limit of "
        f"{declared + 1024 * 1024} bytes (its declared {declared} bytes + DOWNLOAD_SIZE_SLACK_BYTES)"
    )
    assert runnable in emulator.completes


def test_a_manifest_larger_than_the_node_reads_fails_the_task_before_any_recording_is_fetched(
    emulator: Emulator, make_config
):
    """The manifest is read whole into memory: its own declared size is no bound on that."""
    scan = seed_scan(emulator)
    manifest = emulator.items[scan.manifest_id]
    padding = b" " * (16 * 1024 * 1024)
    manifest.content = manifest.content[:-1] + padding + b"}"  # still the same JSON, its size declared
    hostile = emulator.add_task([scan.manifest_cid])
    runnable = add_runnable_task(emulator)

    run_one_task(emulator, make_config(), runnable)

    assert emulator.fails[hostile]["reason"] == (
        f"runner failed: inputs: download of {manifest.name} ({manifest.id}) is larger than its limit of "
        "16777216 bytes (the node's limit on a refined manifest)"
    )
    assert emulator.matching("GET", recording_path(emulator)) == []
    assert runnable in emulator.completes


def test_a_manifest_naming_more_dataids_than_any_scan_fails_the_task_before_any_metadata_call(
    emulator: Emulator, make_config
):
    """Each hundred item ids is a metadata call and each scan name up to two: 16 MiB of manifest could
    name hundreds of thousands."""
    scans = [f"scan_{n}" for n in range(10_000)]
    manifest = seed_manifest(emulator, [add_recording(emulator, "dmt_recording_scan_a"), *scans])
    task_id = emulator.add_task([manifest.cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.fails[task_id]["reason"] == (
        "runner failed: inputs: the refined manifest names 10001 dataIDs (at most 10000): no scan has "
        "that many"
    )
    assert [r.query for r in emulator.matching("GET", DATA_PATH)] == [{"ids": [manifest.id]}]


@pytest.mark.parametrize(
    ("part_size", "why"),
    [
        (0, "part_size 0 is no positive whole number of bytes"),
        (-400, "part_size -400 is no positive whole number of bytes"),
        ("lots", "part_size 'lots' is no positive whole number of bytes"),
        (2, "part_size of 2 bytes would split it into 10001 parts (at most 10000)"),
    ],
    ids=["zero", "negative", "text", "too-many-parts"],
)
def test_a_multipart_part_size_no_upload_can_use_fails_the_task_and_aborts_the_upload(
    emulator: Emulator, make_config, monkeypatch, part_size, why
):
    monkeypatch.setenv("FAKE_SPLAT_BYTES", "20001")
    emulator.request_max_bytes = 1024
    emulator.part_size = part_size
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.fails[task_id]["reason"] == (
        f"runner failed: upload: the domain server's multipart {why} for refined_splat{SUFFIX} (20001 bytes)"
    )
    assert emulator.matching("PUT", DATA_PATH + "/multipart") == []
    assert len(emulator.aborted_uploads) == 1 and emulator.uploads == {}


@pytest.mark.parametrize(
    ("limit", "why"),
    [
        (float("nan"), "upload.request_max_bytes nan is no positive whole number"),
        (-5, "upload.request_max_bytes -5 is no positive whole number"),
        ("lots", "upload.request_max_bytes 'lots' is no positive whole number"),
    ],
    ids=["NaN", "negative", "text"],
)
def test_domain_info_with_an_unusable_request_limit_fails_the_task_on_one_line(
    emulator: Emulator, make_config, limit, why
):
    emulator.request_max_bytes = limit
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.fails[task_id]["reason"] == (
        f"runner failed: upload: the domain server's reply for domain info is unusable: its {why}"
    )
    assert emulator.matching("POST", DATA_PATH) == []


@pytest.mark.parametrize(
    ("stage", "fields", "why", "aborted"),
    [
        (
            "start",
            {"upload_id": None},
            "start of multipart upload of {name} is unusable: the reply has no upload_id",
            0,
        ),
        (
            "start",
            {"upload_id": "u\r\nX"},
            "start of multipart upload of {name} is unusable: "
            "the reply's upload_id 'u\\r\\nX' has a control character",
            0,
        ),
        ("part", {"etag": None}, "upload of part 1 is unusable: the reply has no etag", 1),
        ("part", {"etag": 7}, "upload of part 1 is unusable: the reply's etag 7 is no text", 1),
    ],
    ids=["no-upload-id", "upload-id-with-a-line-break", "no-etag", "etag-number"],
)
def test_a_multipart_reply_without_its_id_or_etag_fails_the_task_on_one_line(
    emulator: Emulator, make_config, monkeypatch, stage, fields, why, aborted
):
    monkeypatch.setenv("FAKE_SPLAT_BYTES", "20001")
    emulator.request_max_bytes = 1024
    emulator.part_size = 16 * 1024
    emulator.multipart_reply_fields[stage] = fields
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    name = f"refined_splat{SUFFIX}"
    assert emulator.fails[task_id]["reason"] == (
        f"runner failed: upload: the domain server's reply for {why.format(name=name)}"
    )
    assert len(emulator.aborted_uploads) == aborted  # without an upload id there is none to abort


def test_run_py_gets_no_node_secret_in_its_environment(
    emulator: Emulator, make_config, monkeypatch, tmp_path: Path
):
    secret = emulator.registration_secret
    env_file = tmp_path / "environment.json"
    monkeypatch.setenv("FAKE_ENV_FILE", str(env_file))
    monkeypatch.setenv("SECP256K1_PRIVHEX", "0x" + NODE_KEY)
    monkeypatch.setenv("REG_SECRET", secret)
    monkeypatch.setenv("DMS_BASE_URL", emulator.dms_url)
    monkeypatch.setenv("COPY_OF_THE_KEY", NODE_KEY.upper())
    monkeypatch.setenv("SECRET_IN_A_URL", f"https://node:{secret}@example.invalid/")
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    environment = json.loads(env_file.read_text())
    assert not {
        "SECP256K1_PRIVHEX",
        "REG_SECRET",
        "DMS_BASE_URL",
        "COPY_OF_THE_KEY",
        "SECRET_IN_A_URL",
    } & set(environment)
    assert not any(NODE_KEY in value.lower() or secret in value for value in environment.values())
    assert environment["PYTHONUNBUFFERED"] == "1" and environment["PATH"]


def test_secrets_run_py_prints_are_redacted_from_everything_dms_hears(
    emulator: Emulator, make_config, monkeypatch, tmp_path: Path
):
    secret = emulator.registration_secret
    # a key that straddles the 2000-character cut of a log line must not survive in part either
    leak = tmp_path / "leak.txt"
    leak.write_text("x" * 1970 + f"{NODE_KEY} and {secret} and {NODE_KEY.upper()}")
    monkeypatch.setenv("FAKE_RUN_MODE", "fail")
    monkeypatch.setenv("FAKE_FAILURE_FILE", str(leak))
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    told = json.dumps([emulator.fails[task_id], emulator.heartbeats(task_id)]).lower()
    assert NODE_KEY[:16] not in told and secret not in told
    reason = emulator.fails[task_id]["reason"]
    assert reason.startswith("runner failed: python: run.py exited with code 3: RuntimeError: xxx")
    assert "[redacted]" in reason
