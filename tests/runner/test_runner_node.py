"""The real node loop and job code against the loopback DMS / DDS / domain emulator."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from dms_emulator import CAPABILITY, DOMAIN_ID, Emulator, Fault
from node_harness import (
    DATA_PATH,
    FAKE_RUN,
    NODE_ADDRESS,
    SUFFIX,
    run_one_task,
    running_node,
    seed_scan,
    sha256,
    splat_report,
)
from processes import is_running


def test_happy_path(emulator: Emulator, make_config, tasks_root: Path):
    scan = seed_scan(emulator)
    task_id = emulator.add_task([scan.manifest_cid])
    config = make_config()

    with running_node(config) as node:
        emulator.wait_for(lambda: emulator.is_settled(task_id), what="task to settle")
        assert httpx.get(f"http://127.0.0.1:{node.health_port}/health").status_code == 200

    task = emulator.tasks[task_id]
    assert task_id not in emulator.fails
    splat = emulator.item_named(f"refined_splat{SUFFIX}")
    sog = emulator.item_named(f"refined_splat_sog{SUFFIX}")
    preview = emulator.item_named(f"refined_splat_preview_video{SUFFIX}")
    poster = emulator.item_named(f"refined_splat_preview_image{SUFFIX}")
    assert (splat.data_type, preview.data_type) == ("splat_data", "splat_preview_video")
    assert sog.data_type == "splat_data_sog" and sog.content == b"PK\x03\x04 fake sog"
    assert preview.content == b"\x00\x00\x00\x18ftypisom fake preview video"
    assert poster.data_type == "splat_preview_image" and poster.content == b"\xff\xd8\xff\xe0 fake poster"
    coverage = emulator.item_named(f"refined_splat_coverage_image{SUFFIX}")
    assert coverage.data_type == "splat_coverage_image" and coverage.content.endswith(b"fake coverage")

    # run.py saw the inputs laid out as PROTOCOL.md §4 says, and was launched as it says.
    report = splat_report(emulator)
    job_root = tasks_root.resolve() / task_id
    assert report["argv"] == [
        *("--domain_id", DOMAIN_ID, "--job_id", task.job_id),
        *("--job_root_path", str(job_root), "--log_level", "info"),
    ]
    assert report["cwd"] == str(FAKE_RUN.parent) and report["unbuffered"] == "1"
    expected_files = {f"datasets/{s}/Frames.mp4": digest for s, digest in scan.recordings.items()}
    expected_files |= {f"refined/global/refined_sfm_combined/{f}": d for f, d in scan.colmap.items()}
    expected_files["refined_manifest.json"] = sha256(emulator.items[scan.manifest_id].content)
    expected_files[".splatter-workspace"] = sha256(b"")
    assert report["files"] == expected_files

    # complete body
    artifacts = [
        {
            "logical_path": "refined/splatter/splat_rot.sog",
            "name": sog.name,
            "data_type": "splat_data_sog",
            "id": sog.id,
        },
        {
            "logical_path": "refined/splatter/splat_rot.splat",
            "name": splat.name,
            "data_type": "splat_data",
            "id": splat.id,
        },
        {
            "logical_path": "refined/splatter/preview.mp4",
            "name": preview.name,
            "data_type": "splat_preview_video",
            "id": preview.id,
        },
        {
            "logical_path": "refined/splatter/preview.jpg",
            "name": poster.name,
            "data_type": "splat_preview_image",
            "id": poster.id,
        },
        {
            "logical_path": "refined/splatter/coverage.jpg",
            "name": coverage.name,
            "data_type": "splat_coverage_image",
            "id": coverage.id,
        },
    ]
    job = {"task_id": task_id, "job_id": task.job_id, "domain_id": DOMAIN_ID, "capability": CAPABILITY}
    # quality.json's figures, its per-view lists left out
    quality = {
        "schema": 1,
        "gaussians": 1000,
        "quality": {"held_out": {"views": 2, "psnr": 25.5}},
        "coverage": {"well_seen": 0.8, "thin_regions": [{"where": "far, upper"}]},
    }
    assert emulator.completes[task_id] == {
        "output_cids": [sog.id, splat.id, preview.id, poster.id, coverage.id],
        "meta": {"job": job, "artifacts": artifacts, "quality": quality},
    }

    # progress: leased, workspace, inputs, python band (run.py's 0/20/60/100), upload band, complete
    beats = emulator.heartbeats(task_id)
    assert [(b["progress"]["progress"], b["progress"]["stage"]) for b in beats] == [
        (0, "leased"), (5, "workspace"), (20, "inputs"), (35, "python"), (35, "python"), (44, "python"),
        (62, "python"), (80, "python"), (80, "python"), (85, "upload"), (90, "upload"), (90, "upload"),
        (90, "upload"), (90, "upload"), (90, "upload"), (95, "upload"), (100, "complete"),
    ]  # fmt: skip
    final = beats[-1]["progress"]
    assert final["status"] == "succeeded" and final["artifacts"] == artifacts
    assert (final["sog"], final["preview_video"], final["preview_image"]) == tuple(
        artifacts[i] for i in (0, 2, 3)
    )
    assert (final["preview"], final["poster"]) == ("preview video uploaded", "poster uploaded")
    assert (
        final["coverage_image"] == artifacts[4] and final["coverage_picture"] == "coverage picture uploaded"
    )
    assert final["quality"] == quality and final["quality_note"] == "quality report read"
    assert final["sog_note"] == "SOG uploaded"
    # the SOG first, then the splat, the video, the poster and the coverage picture
    assert beats[-3]["progress"]["uploaded"] == [
        sog.name,
        splat.name,
        preview.name,
        poster.name,
        coverage.name,
    ]
    assert sog.name == f"refined_splat_sog{SUFFIX}" != f"refined_splat_sog_{SUFFIX}"
    assert beats[6]["progress"]["step"] == "train" and beats[6]["progress"]["step_pct"] == 60

    # every domain request carried the client id and the token rotated by the first heartbeat
    domain_requests = [r for r in emulator.requests if r.path.startswith("/domain/")]
    assert domain_requests and all(r.status < 400 for r in domain_requests)
    assert {r.headers["posemesh-client-id"] for r in domain_requests} == {config.client_id}
    assert {r.headers["authorization"] for r in domain_requests} == {f"Bearer {task.domain_token}"}
    assert all(r.method != "PUT" for r in domain_requests)  # fresh names: created, not updated

    registration = emulator.registrations[0]
    assert (
        registration["capabilities"] == [CAPABILITY]
        and registration["message"].splitlines()[1] == NODE_ADDRESS
    )
    assert not registration["version"].startswith("v")


@pytest.mark.parametrize(
    ("mode", "published", "missing"),
    [
        (
            "no_poster",
            (
                "refined_splat_sog",
                "refined_splat",
                "refined_splat_preview_video",
                "refined_splat_coverage_image",
            ),
            (("preview.jpg", "poster"),),
        ),
        (
            "no_preview",
            ("refined_splat_sog", "refined_splat"),
            (
                ("preview.mp4", "preview video"),
                ("preview.jpg", "poster"),
                ("coverage.jpg", "coverage picture"),
            ),
        ),
    ],
)
def test_missing_previews_complete_the_task_without_them_and_say_so(
    emulator: Emulator, make_config, monkeypatch, mode, published, missing
):
    monkeypatch.setenv("FAKE_RUN_MODE", mode)
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    ids = [emulator.item_named(f"{name}{SUFFIX}").id for name in published]
    complete = emulator.completes[task_id]
    assert complete["output_cids"] == ids and [a["id"] for a in complete["meta"]["artifacts"]] == ids
    assert emulator.item_named(f"refined_splat_preview_image{SUFFIX}") is None
    beats = emulator.heartbeats(task_id)
    final = beats[-1]["progress"]
    assert final["progress"] == 100 and [a["id"] for a in final["artifacts"]] == ids
    assert final["preview_image"] is None
    assert final["poster"] == "run.py produced no refined/splatter/preview.jpg; completing without the poster"
    assert (final["preview_video"] is None) == (mode == "no_preview")
    warnings = [e["message"] for b in beats for e in b["events"] if e["level"] == "warning"]
    no_report = ["run.py produced no refined/splatter/quality.json"] if mode == "no_preview" else []
    assert warnings == [
        *(
            f"run.py produced no refined/splatter/{file}; completing without the {label}"
            for file, label in missing
        ),
        *no_report,
    ]
    assert (final["quality"] is None) == (mode == "no_preview")


WITHOUT_SOG = (  # what a task without its SOG uploads, in order
    "refined_splat",
    "refined_splat_preview_video",
    "refined_splat_preview_image",
    "refined_splat_coverage_image",
)


def test_a_missing_sog_completes_the_task_with_the_splat_and_says_so(
    emulator: Emulator, make_config, monkeypatch
):
    monkeypatch.setenv("FAKE_RUN_MODE", "no_sog")
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    ids = [emulator.item_named(f"{name}{SUFFIX}").id for name in WITHOUT_SOG]
    assert emulator.completes[task_id]["output_cids"] == ids
    assert emulator.item_named(f"refined_splat_sog{SUFFIX}") is None
    beats = emulator.heartbeats(task_id)
    final = beats[-1]["progress"]
    note = "run.py produced no refined/splatter/splat_rot.sog; completing without the SOG"
    assert final["sog"] is None and final["sog_note"] == note
    assert [e["message"] for b in beats for e in b["events"] if e["level"] == "warning"] == [note]


def test_a_refused_sog_upload_leaves_the_splat_and_completes(emulator: Emulator, make_config):
    emulator.inject(Fault("POST", DATA_PATH, status=413, body_has=b'name="refined_splat_sog'))
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.completes[task_id]["output_cids"] == [
        emulator.item_named(f"{n}{SUFFIX}").id for n in WITHOUT_SOG
    ]
    assert emulator.item_named(f"refined_splat_sog{SUFFIX}") is None
    assert [r.status for r in emulator.matching("POST", DATA_PATH)] == [
        413,
        200,
        200,
        200,
        200,
    ]  # the SOG first
    final = emulator.heartbeats(task_id)[-1]["progress"]
    assert final["sog"] is None and final["sog_note"].startswith("SOG upload failed (HTTP 413 from POST ")


def test_failed_preview_uploads_do_not_fail_the_task(emulator: Emulator, make_config):
    emulator.inject(Fault("POST", DATA_PATH, status=400, times=None))  # creates fail for good...
    emulator.add_item(f"refined_splat{SUFFIX}", "splat_data", b"old splat")  # ...the splat is an update
    scan = seed_scan(emulator)
    task_id = emulator.add_task([scan.manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    splat = emulator.item_named(f"refined_splat{SUFFIX}")
    assert emulator.completes[task_id]["output_cids"] == [splat.id]
    assert splat_report(emulator)["argv"][0] == "--domain_id"
    final = emulator.heartbeats(task_id)[-1]["progress"]
    assert final["sog_note"].startswith("SOG upload failed (HTTP 400 from POST ")
    assert final["preview"].startswith("preview video upload failed (HTTP 400 from POST ")
    assert final["poster"].startswith("poster upload failed (HTTP 400 from POST ")


def test_a_refused_poster_upload_leaves_the_video_and_completes(emulator: Emulator, make_config):
    emulator.inject(Fault("POST", DATA_PATH, status=403, body_has=b'name="refined_splat_preview_image'))
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    splat = emulator.item_named(f"refined_splat{SUFFIX}")
    preview = emulator.item_named(f"refined_splat_preview_video{SUFFIX}")
    sog = emulator.item_named(f"refined_splat_sog{SUFFIX}")
    coverage = emulator.item_named(f"refined_splat_coverage_image{SUFFIX}")
    assert emulator.completes[task_id]["output_cids"] == [sog.id, splat.id, preview.id, coverage.id]
    assert emulator.item_named(f"refined_splat_preview_image{SUFFIX}") is None
    assert [r.status for r in emulator.matching("POST", DATA_PATH)] == [
        200,
        200,
        200,
        403,
        200,
    ]  # not retried
    beats = emulator.heartbeats(task_id)
    final = beats[-1]["progress"]
    assert final["preview_image"] is None and final["preview_video"]["id"] == preview.id
    assert final["poster"] == (
        f"poster upload failed (HTTP 403 from POST {emulator.domain_url}/api/v1/domains/{DOMAIN_ID}/data); "
        "completing without it"
    )
    warnings = [e["message"] for b in beats for e in b["events"] if e["level"] == "warning"]
    assert warnings == [final["poster"]]


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("{not json", "refined/splatter/quality.json is not valid JSON; left out"),
        ('{"psnr": NaN}', "refined/splatter/quality.json is not valid JSON; left out"),
        ("[" * 100_000, "refined/splatter/quality.json is not valid JSON; left out"),
        ("[1, 2]", "refined/splatter/quality.json is not a JSON object; left out"),
        (
            '{"x": "' + "a" * 300_000 + '"}',
            "refined/splatter/quality.json is larger than 262144 bytes; left out",
        ),
        (
            '{"x": "' + "a" * 20_000 + '"}',
            "refined/splatter/quality.json's figures exceed 16384 bytes; left out",
        ),
    ],
)
def test_a_hostile_quality_report_is_left_out_and_the_task_completes(
    emulator: Emulator, make_config, monkeypatch, tmp_path, text, note
):
    (tmp_path / "quality.json").write_text(text)
    monkeypatch.setenv("FAKE_QUALITY_FILE", str(tmp_path / "quality.json"))
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.completes[task_id]["meta"]["quality"] is None
    beats = emulator.heartbeats(task_id)
    final = beats[-1]["progress"]
    assert final["status"] == "succeeded" and final["quality"] is None and final["quality_note"] == note
    assert [e["message"] for b in beats for e in b["events"] if e["level"] == "warning"] == [note]


def test_missing_splat_fails_the_task_with_a_reason(emulator: Emulator, make_config, monkeypatch):
    monkeypatch.setenv("FAKE_RUN_MODE", "no_splat")
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert task_id not in emulator.completes
    fail = emulator.fails[task_id]
    assert fail["reason"] == "runner failed: upload: run.py produced no refined/splatter/splat_rot.splat"
    assert fail["details"]["job"]["task_id"] == task_id and fail["details"]["artifacts"] == []
    assert emulator.matching("POST", DATA_PATH) == []  # not even the preview went up


def test_pipeline_failure_reports_exit_code_and_the_last_200_lines(
    emulator: Emulator, make_config, monkeypatch
):
    monkeypatch.setenv("FAKE_RUN_MODE", "fail")
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.fails[task_id]["reason"] == (
        "runner failed: python: run.py exited with code 3: RuntimeError: CUDA out of memory"
    )
    errors = [e for b in emulator.heartbeats(task_id) for e in b["events"] if e["level"] == "error"]
    tail = errors[-1]["output_tail"]
    assert len(tail) == 200 and tail[-1] == "RuntimeError: CUDA out of memory" and tail[0] == "log line 55"


def test_no_recording_fails_the_task(emulator: Emulator, make_config):
    task_id = emulator.add_task([seed_scan(emulator, scans=()).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.fails[task_id]["reason"].startswith("runner failed: inputs: none of the manifest's")
    assert emulator.matching("POST", DATA_PATH) == []


def test_metadata_is_asked_for_at_most_100_ids_at_a_time(emulator: Emulator, make_config):
    scan = seed_scan(emulator, other_items=230)
    task_id = emulator.add_task([scan.manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert task_id in emulator.completes
    by_ids = [r.query["ids"][0].split(",") for r in emulator.matching("GET", DATA_PATH) if "ids" in r.query]
    assert [len(ids) for ids in by_ids] == [1, 100, 100, 32]
    assert set(splat_report(emulator)["files"]) >= {
        "datasets/scan_a/Frames.mp4",
        "datasets/scan_b/Frames.mp4",
    }


def test_incomplete_colmap_is_skipped_whole(emulator: Emulator, make_config):
    task_id = emulator.add_task([seed_scan(emulator, colmap=4).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert task_id in emulator.completes
    files = splat_report(emulator)["files"]
    assert not any(path.startswith("refined/global") for path in files)
    assert emulator.matching("GET", DATA_PATH + r"/.+") and not any(
        "colmap" in emulator.items[r.path.rsplit("/", 1)[1]].name
        for r in emulator.matching("GET", DATA_PATH + r"/.+")
    )


def test_cancellation_kills_the_whole_process_group_and_reports_nothing(
    emulator: Emulator, make_config, monkeypatch, tmp_path: Path
):
    pid_file = tmp_path / "pids.json"
    monkeypatch.setenv("FAKE_RUN_MODE", "hang")
    monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    with running_node(make_config(KILL_GRACE_SECS="1")):
        emulator.wait_for(pid_file.exists, what="the fake pipeline to start")
        pids = json.loads(pid_file.read_text())
        assert all(is_running(pid) for pid in pids)
        emulator.cancel(task_id)
        cancelled_at = time.monotonic()
        emulator.wait_for(
            lambda: not any(is_running(pid) for pid in pids), timeout=10, what="the process group to die"
        )
        assert time.monotonic() - cancelled_at < 10
        beats_after_cancel = len(emulator.heartbeats(task_id))
        time.sleep(0.3)  # the node is idle again; nothing more may arrive for this task
        assert len(emulator.heartbeats(task_id)) == beats_after_cancel

    assert task_id not in emulator.completes and task_id not in emulator.fails
    assert emulator.matching("POST", DATA_PATH) == []


@pytest.mark.parametrize(
    ("task_kwargs", "tells_dms"),
    [({"capability": "/other/capability/v1"}, True), ({"arrives_expired": True}, False),
     ({"arrives_cancelled": True}, False)],
)  # fmt: skip
def test_unrunnable_leases_are_refused(emulator: Emulator, make_config, task_kwargs, tells_dms):
    refused = emulator.add_task([seed_scan(emulator).manifest_cid], **task_kwargs)
    runnable = emulator.add_task([seed_scan(emulator, suffix="_second").manifest_cid])

    run_one_task(emulator, make_config(), runnable)

    assert emulator.heartbeats(refused) == [] and refused not in emulator.completes
    assert (refused in emulator.fails) == tells_dms
    if tells_dms:
        assert "/other/capability/v1" in emulator.fails[refused]["reason"]
    assert emulator.item_named(f"refined_splat{SUFFIX}") is None  # the refused task's manifest never ran
    assert runnable in emulator.completes


def test_existing_outputs_are_updated_in_place(emulator: Emulator, make_config):
    old_splat = emulator.add_item(f"refined_splat{SUFFIX}", "splat_data", b"old")
    emulator.add_item(f"refined_splat{SUFFIX}", "other_type", b"same name, other type")
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.completes[task_id]["output_cids"][1] == old_splat  # after the SOG
    assert emulator.items[old_splat].content.startswith(b'{"argv"')
    updates = emulator.matching("PUT", DATA_PATH)
    assert len(updates) == 1 and f'form-data; id="{old_splat}"'.encode() in updates[0].body


def test_large_files_go_up_in_parts(emulator: Emulator, make_config, monkeypatch):
    monkeypatch.setenv("FAKE_SPLAT_BYTES", "2500")
    emulator.request_max_bytes = 1024
    emulator.part_size = 400
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    splat = emulator.item_named(f"refined_splat{SUFFIX}")
    assert len(splat.content) == 2500 and splat.data_type == "splat_data"
    assert emulator.completes[task_id]["output_cids"][1] == splat.id
    starts = [r.json() for r in emulator.matching("POST", DATA_PATH + "/multipart") if "uploads" in r.query]
    assert starts == [
        {
            "name": splat.name,
            "data_type": "splat_data",
            "size": 2500,
            "content_type": "application/octet-stream",
            "existing_id": None,
        }
    ]
    assert [r.query["partNumber"] for r in emulator.matching("PUT", DATA_PATH + "/multipart")] == [
        [str(n)] for n in range(1, 8)
    ]
    assert emulator.item_named(f"refined_splat_preview_video{SUFFIX}") is not None  # small: one request


def test_a_failing_multipart_upload_is_aborted(emulator: Emulator, make_config, monkeypatch):
    monkeypatch.setenv("FAKE_SPLAT_BYTES", "2500")
    emulator.request_max_bytes = 1024
    emulator.part_size = 400
    emulator.inject(Fault("PUT", DATA_PATH + "/multipart", status=500))
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.fails[task_id]["reason"].startswith(
        "runner failed: upload: upload of part 1 failed after 3 attempts: HTTP 500 from PUT"
    )
    assert len(emulator.aborted_uploads) == 1 and emulator.uploads == {}


def test_too_large_without_multipart_fails_clearly(emulator: Emulator, make_config, monkeypatch):
    monkeypatch.setenv("FAKE_SPLAT_BYTES", "2500")
    emulator.request_max_bytes = 1024
    emulator.multipart_enabled = False
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid])

    run_one_task(emulator, make_config(), task_id)

    assert emulator.fails[task_id]["reason"] == (
        f"runner failed: upload: refined_splat{SUFFIX} is 2500 bytes, over the domain's request limit of "
        "1024 bytes, and the domain does not offer multipart upload"
    )
    # Only the SOG, small and uploaded first, went up.
    assert [r.body.count(b"refined_splat_sog") for r in emulator.matching("POST", DATA_PATH)] == [1]


def test_transient_domain_errors_are_retried(emulator: Emulator, make_config):
    scan = seed_scan(emulator)
    recording = (
        DATA_PATH + "/" + next(i.id for i in emulator.items.values() if i.name == "dmt_recording_scan_a")
    )
    emulator.inject(Fault("GET", recording, status=503, times=2))
    task_id = emulator.add_task([scan.manifest_cid])

    run_one_task(emulator, make_config(RETRY_ATTEMPTS="3"), task_id)

    assert task_id in emulator.completes
    assert [r.status for r in emulator.matching("GET", recording)] == [503, 503, 200]


def test_persistent_domain_errors_fail_the_task_after_bounded_retries(emulator: Emulator, make_config):
    scan = seed_scan(emulator)
    emulator.inject(Fault("GET", DATA_PATH + "/.+", status=502))
    task_id = emulator.add_task([scan.manifest_cid])

    run_one_task(emulator, make_config(RETRY_ATTEMPTS="4"), task_id)

    downloads = emulator.matching("GET", DATA_PATH + "/.+")
    assert len(downloads) == 4
    assert emulator.fails[task_id]["reason"] == (
        f"runner failed: inputs: download of refined_manifest{SUFFIX} ({scan.manifest_id}) failed after 4 "
        "attempts: "
        f"HTTP 502 from GET {emulator.domain_url}/api/v1/domains/{DOMAIN_ID}/data/{scan.manifest_id}"
    )


def test_domain_timeouts_fail_the_task_after_bounded_retries(emulator: Emulator, make_config):
    scan = seed_scan(emulator)
    emulator.inject(Fault("GET", DATA_PATH, delay=1.0))
    task_id = emulator.add_task([scan.manifest_cid])

    started = time.monotonic()
    run_one_task(emulator, make_config(HTTP_TIMEOUT_SECS="0.2", RETRY_ATTEMPTS="2"), task_id)

    assert time.monotonic() - started < 5
    assert len(emulator.matching("GET", DATA_PATH)) == 2
    assert emulator.fails[task_id]["reason"] == (
        "runner failed: inputs: metadata of 1 items failed after 2 attempts: timed out (ReadTimeout)"
    )


def test_expiring_login_tokens_are_renewed_before_they_lapse(emulator: Emulator, make_config):
    # Renewal comes at 70–75 % of the lifetime: 2 s leaves half a second for a poll sent just before
    # it to be answered, time a loaded machine can take.
    emulator.token_lifetime_secs = 2.0

    with running_node(make_config()):
        emulator.wait_for(lambda: emulator.logins >= 3, timeout=15, what="repeated logins")

    assert all(r.status != 401 for r in emulator.matching("GET", "/dms/v1/tasks"))


def test_a_dms_401_triggers_a_new_login_and_one_retry(emulator: Emulator, make_config):
    with running_node(make_config()):
        emulator.wait_for(lambda: emulator.matching("GET", "/dms/v1/tasks"), what="a first lease poll")
        logins_before = emulator.logins
        emulator.revoke_login_tokens()
        task_id = emulator.add_task([seed_scan(emulator).manifest_cid])
        emulator.wait_for(lambda: emulator.is_settled(task_id), what="the task to settle")

    assert task_id in emulator.completes and emulator.logins == logins_before + 1
    lease_polls = emulator.matching("GET", "/dms/v1/tasks")
    first_401 = next(i for i, r in enumerate(lease_polls) if r.status == 401)
    assert lease_polls[first_401 + 1].status == 200  # the retry right after logging in again


def test_registration_conflict_is_retried_with_backoff(emulator: Emulator, make_config):
    emulator.register_status = 409

    with running_node(make_config(REGISTER_INTERVAL_SECS="60")):
        emulator.wait_for(lambda: len(emulator.registrations) >= 3, timeout=5, what="registration retries")
        emulator.register_status = None
        emulator.wait_for(
            lambda: len(emulator.registrations) >= 4, timeout=5, what="a successful registration"
        )
        registered = len(emulator.registrations)
        time.sleep(0.3)
        assert len(emulator.registrations) == registered  # registered: next attempt only after the interval


def test_registration_repeats_every_interval(emulator: Emulator, make_config):
    with running_node(make_config(REGISTER_INTERVAL_SECS="0.2")):
        emulator.wait_for(lambda: len(emulator.registrations) >= 3, timeout=5, what="periodic registration")


@pytest.mark.parametrize(
    ("heartbeat_status", "lease_secs", "survives_secs"),
    [(404, 60.0, 0.0), (503, 1.5, 1.0)],  # refused: lost at once; failing: lost when the lease runs out
)
def test_lost_lease_stops_the_task_silently(
    emulator: Emulator, make_config, monkeypatch, tmp_path: Path, heartbeat_status, lease_secs, survives_secs
):
    pid_file = tmp_path / "pids.json"
    monkeypatch.setenv("FAKE_RUN_MODE", "hang")
    monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
    task_id = emulator.add_task([seed_scan(emulator).manifest_cid], lease_secs=lease_secs)

    with running_node(make_config()):
        emulator.wait_for(pid_file.exists, what="the fake pipeline to start")
        emulator.inject(Fault("POST", rf"/dms/v1/tasks/{task_id}/heartbeat", status=heartbeat_status))
        failing_since = time.monotonic()
        pids = json.loads(pid_file.read_text())
        emulator.wait_for(
            lambda: not any(is_running(pid) for pid in pids), timeout=10, what="the process group to die"
        )
        assert time.monotonic() - failing_since >= survives_secs

    assert task_id not in emulator.completes and task_id not in emulator.fails


def test_stale_workspaces_are_swept_at_start_and_other_folders_kept(
    emulator: Emulator, make_config, tasks_root: Path
):
    stale = tasks_root / "old-task"
    (stale / "datasets").mkdir(parents=True)
    (stale / ".splatter-workspace").touch()
    foreign = tasks_root / "not-a-workspace"
    foreign.mkdir()

    with running_node(make_config()):
        emulator.wait_for(lambda: not stale.exists(), timeout=5, what="the stale workspace to go")
    assert foreign.is_dir()
    foreign.rmdir()
