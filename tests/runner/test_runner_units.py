"""The runner's pure pieces: naming, parsing, limits, schedules, configuration."""

import json
import os
import random
import re
import sys
import tracemalloc
from pathlib import Path

import pytest

from runner import CAPABILITY
from runner.cancel import CancelSignal
from runner.config import ConfigError, load_config
from runner.dms import Lease, Task, lease_refusal, truncate_utf8
from runner.domain import (
    DataMeta,
    FormEnvelope,
    UnsafeFormValue,
    UnusableReply,
    create_disposition,
    form_value,
    parse_data_cid,
    parse_meta_reply,
    update_disposition,
)
from runner.inputs import (
    colmap_items,
    is_safe_folder,
    item_ids,
    manifest_suffix,
    named_scan,
    named_scans,
    recording_names,
    recording_scan,
)
from runner.lease import heartbeat_delay
from runner.outputs import artifact_name
from runner.process import LINE_MAX_CHARS, pipeline_environment, run_process
from runner.progress import failure_event, parse_progress_line, task_percent
from runner.redaction import REDACTED, Redactor
from runner.retry import Backoff
from runner.timestamps import parse_rfc3339
from runner.transfer import SizeCap, TransferAborted, TransferGuard, TransferLimits
from runner.urls import path_segment, same_server
from runner.workspace import is_safe_component

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def test_manifest_suffix_and_artifact_names():
    assert manifest_suffix("refined_manifest_2024-01-02_03-04-05") == "_2024-01-02_03-04-05"
    assert manifest_suffix("refined_manifest") == ""
    assert manifest_suffix("something_else") == ""
    assert artifact_name("refined_splat", "_2024") == "refined_splat_2024"
    assert artifact_name("refined_splat", "2024") == "refined_splat_2024"
    assert artifact_name("refined_splat", "") == "refined_splat"
    assert colmap_items("_s")[0] == ("colmap_frames_bin_s", "frames.bin")
    assert [f for _, f in colmap_items("_s")] == [
        "frames.bin",
        "images.bin",
        "cameras.bin",
        "points3D.bin",
        "rigs.bin",
    ]


def test_recording_items_give_their_scan_without_the_extension():
    assert recording_scan("dmt_recording_2024-05-01_abc") == "2024-05-01_abc"
    assert recording_scan("dmt_recording_2024-05-01_abc.mp4") == "2024-05-01_abc"
    assert recording_scan("refined_scan_x") is None


def test_dataids_that_are_neither_urls_nor_uuids_name_scans():
    item = "0b6c1f0e-8a55-4c1e-9d43-3a1f2e9c7b10"
    manifest = [
        item,
        item.upper(),
        "https://ds.example/api/v1/domains/D/data/" + item,
        "http://ds.example/x",
        "refined_scan_s1",
        "dmt_recording_s2",
        "dmt_recording_s3.mp4",
        " s4 ",
        "s4.mp4",
        "s1",
        "",
        "   ",
    ]
    assert named_scans(manifest) == ("s1", "s2", "s3", "s4")
    assert item_ids(manifest) == [item, item.upper()]
    assert recording_names("s1") == ("dmt_recording_s1", "dmt_recording_s1.mp4")


def test_scan_ids_that_cannot_be_folder_names_are_refused():
    assert is_safe_folder("2024-05-01_abc.v2")
    assert is_safe_folder("s" * 128)
    for hostile in ("../../etc", "a/b", "", "..", ".hidden", "x.mp4", "a\\b", "scan\n", "s" * 129, "a\x00"):
        assert not is_safe_folder(hostile), hostile
    assert named_scan("dmt_recording_x.mp4.mp4") == "x.mp4"  # still refused as a folder: never `.mp4`


def test_task_ids_must_be_one_safe_path_component():
    assert is_safe_component("0b6c1f0e-8a55-4c1e-9d43-3a1f2e9c7b10") and is_safe_component("t.1_a")
    for hostile in (
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "a\\b",
        ".x",
        "-x",
        "a\n",
        "a\x00",
        "a\x7f",
        "t" * 129,
        "é",
    ):
        assert not is_safe_component(hostile), hostile


def test_the_domain_server_is_one_scheme_host_and_port():
    assert same_server("https://ds.example/api/v1/x", "https://DS.example:443/base")
    assert same_server("http://127.0.0.1:8000/a", "http://127.0.0.1:8000")
    for other in ("http://ds.example/x", "https://ds.example:8443/x", "https://ds.example.evil/x", "/x", ""):
        assert not same_server(other, "https://ds.example"), other
    assert not same_server("https://ds.example/x", "")


def test_ids_become_exactly_one_url_path_segment():
    assert path_segment("0b6c1f0e-8a55") == "0b6c1f0e-8a55"
    assert [path_segment(t) for t in ("..", ".", "a/../b", "a?b#c")] == [
        "%2E%2E",
        "%2E",
        "a%2F..%2Fb",
        "a%3Fb%23c",
    ]


def test_data_cid_is_split_and_bare_ids_fall_back_to_the_lease():
    ref = parse_data_cid("https://ds.example/sub/api/v1/domains/D1/data/X9?raw=true", "https://lease", "D0")
    assert (ref.base_url, ref.domain_id, ref.data_id) == ("https://ds.example/sub", "D1", "X9")
    ref = parse_data_cid("X9", "https://lease", "D0")
    assert (ref.base_url, ref.domain_id, ref.data_id) == ("https://lease", "D0", "X9")


def test_progress_lines_map_into_the_python_band():
    line = parse_progress_line("[PROGRESS] stage=train pct=40")
    assert line is not None and (line.step, line.percent) == ("train", 40)
    assert parse_progress_line("[PROGRESS] pct=250").percent == 100
    assert parse_progress_line("progress 40%") is None
    assert parse_progress_line("[PROGRESS] stage=train") is None
    assert [task_percent(p) for p in (0, 20, 60, 100)] == [35, 44, 62, 80]


def test_failure_event_keeps_the_newest_lines_within_64_kib():
    lines = [f"{i:05d} " + "x" * 1000 for i in range(200)]
    event = failure_event("python", "boom", lines)
    assert len(json.dumps(event, separators=(",", ":")).encode()) <= 64 * 1024
    assert event["output_tail"][-1] == lines[-1]
    assert 40 < len(event["output_tail"]) < 200


def test_reason_truncation_respects_utf8_boundaries():
    reason = truncate_utf8("é" * 5000, 4096)
    assert len(reason.encode()) <= 4096 and reason == "é" * 2048


def test_backoff_grows_exponentially_is_capped_and_jittered():
    backoff = Backoff(initial_secs=1, cap_secs=60, attempts=10)
    upper = lambda low, high: high  # noqa: E731
    assert [backoff.delay(n, upper) for n in (1, 2, 3, 7, 8, 20)] == [1, 2, 4, 60, 60, 60]
    rng = random.Random(1)
    delays = {backoff.delay(3, rng.uniform) for _ in range(20)}
    assert all(2 <= d <= 4 for d in delays) and len(delays) > 1


def test_heartbeat_falls_after_a_quarter_to_a_third_of_the_time_left():
    assert heartbeat_delay(1000.0, 900.0, 0.25) == 25.0
    assert heartbeat_delay(1000.0, 900.0, 0.35) == pytest.approx(35.0)
    assert heartbeat_delay(1000.0, 999.9, 0.3) == 0.5  # never a busy loop
    assert heartbeat_delay(None, 0.0, 0.3) == 30.0


def _lease(capability=CAPABILITY, expires=2000.0, cancel=False, status="leased", cids=("c",)) -> Lease:
    task = Task("t", "j", capability, tuple(cids), "", 1, 3)
    return Lease(task, "d", "https://ds", "tok", expires, cancel, status)


def test_lease_refusals():
    assert lease_refusal(_lease(), CAPABILITY, now=1000.0) is None
    wrong = lease_refusal(_lease(capability="/other/v1"), CAPABILITY, now=1000.0)
    assert wrong is not None and wrong.tell_dms and "/other/v1" in wrong.reason
    expired = lease_refusal(_lease(expires=999.0), CAPABILITY, now=1000.0)
    assert expired is not None and not expired.tell_dms
    for stopped in (_lease(cancel=True), _lease(status="cancelled")):
        refusal = lease_refusal(stopped, CAPABILITY, now=1000.0)
        assert refusal is not None and not refusal.tell_dms
    assert lease_refusal(_lease(cids=()), CAPABILITY, now=1000.0).tell_dms


def test_rfc3339_with_nanoseconds_and_zulu():
    assert parse_rfc3339("2024-05-01T00:00:00Z") == 1714521600.0
    assert parse_rfc3339("2024-05-01T00:00:00.123456789Z") == pytest.approx(1714521600.123456)
    assert parse_rfc3339("2024-05-01T02:00:00+02:00") == 1714521600.0
    assert parse_rfc3339("2024-05-01T00:00:00.5Z") == 1714521600.5


def test_form_envelope_has_the_exact_part_headers(tmp_path: Path):
    envelope = FormEnvelope.for_part(create_disposition("refined_splat_x", "splat_data"))
    file = tmp_path / "f.bin"
    file.write_bytes(b"PAYLOAD")
    body = b"".join(envelope.stream(file, 7))
    boundary = envelope.boundary.encode()
    assert body == (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="refined_splat_x"; data-type="splat_data"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\nPAYLOAD\r\n--" + boundary + b"--\r\n"
    )
    assert envelope.body_size(7) == len(body)
    assert envelope.content_type == f"multipart/form-data; boundary={envelope.boundary}"
    assert update_disposition("abc") == 'form-data; id="abc"'


def test_form_values_are_quoted_strings_and_control_characters_refused():
    assert form_value("plain_name") == '"plain_name"'
    assert form_value('a"b\\c é') == '"a\\"b\\\\c é"'
    assert (
        create_disposition('x"; data-type="evil', "t")
        == 'form-data; name="x\\"; data-type=\\"evil"; data-type="t"'
    )
    for hostile in ("a\r\nX: 1", "a\nb", "a\x00", "tab\there", "del\x7f"):
        with pytest.raises(UnsafeFormValue, match="control character"):
            form_value(hostile)


ITEM = {"id": "0b6c1f0e-8a55-4c1e-9d43-3a1f2e9c7b10", "name": "dmt_recording_s1", "size": 5}
UNUSABLE_ITEMS = {
    "size-NaN": (ITEM | {"size": float("nan")}, "item 2's size nan is no whole number of bytes"),
    "size-infinite": (ITEM | {"size": float("inf")}, "item 2's size inf is no whole number of bytes"),
    "size-negative": (ITEM | {"size": -1}, "item 2's size -1 is no whole number of bytes"),
    "size-fraction": (ITEM | {"size": 2.5}, "item 2's size 2.5 is no whole number of bytes"),
    "size-bool": (ITEM | {"size": True}, "item 2's size True is no whole number of bytes"),
    "size-text": (ITEM | {"size": "x" * 200}, f"item 2's size '{'x' * 79} is no whole number of bytes"),
    "id-missing": ({"name": "n", "size": 5}, "item 2 has no id"),
    "id-number": (ITEM | {"id": 7}, "item 2's id 7 is no text"),
    "name-list": (ITEM | {"name": ["n"]}, "item 2's name ['n'] is no text"),
    "data-type-number": (ITEM | {"data_type": 3}, "item 2's data_type 3 is no text"),
    "not-an-object": ("dmt_recording_s1", "item 2 'dmt_recording_s1' is no JSON object"),
    "id-with-a-newline": (
        ITEM | {"id": "x\nERROR forged line"},
        "item 2's id 'x\\nERROR forged line' has a control character",
    ),
    "name-with-an-escape": (
        ITEM | {"name": "dmt_recording_\x1b[2Js1"},
        "item 2's name 'dmt_recording_\\x1b[2Js1' has a control character",
    ),
    "data-type-with-a-nul": (
        ITEM | {"data_type": "t\x00"},
        "item 2's data_type 't\\x00' has a control character",
    ),
}


@pytest.mark.parametrize(("item", "why"), UNUSABLE_ITEMS.values(), ids=UNUSABLE_ITEMS.keys())
def test_metadata_with_an_unusable_field_is_an_unusable_reply_naming_it(item, why: str):
    body = json.loads(json.dumps({"data": [ITEM, item]}))  # as the JSON text would arrive
    with pytest.raises(UnusableReply) as raised:
        parse_meta_reply(body, "metadata of 2 items")
    assert str(raised.value) == f"the domain server's reply for metadata of 2 items is unusable: {why}"


def test_metadata_replies_give_their_items_and_no_data_is_no_items():
    assert parse_meta_reply({"data": [ITEM | {"data_type": "t"}]}, "m") == [
        DataMeta(ITEM["id"], "", "dmt_recording_s1", "t", 5)
    ]
    assert parse_meta_reply({"data": [{"id": "x"}]}, "m") == [DataMeta("x", "", "", "", None)]
    assert parse_meta_reply({}, "m") == parse_meta_reply({"data": None}, "m") == []
    with pytest.raises(UnusableReply, match=r"reply for m is unusable: its data \{'id': 'x'\} is no list$"):
        parse_meta_reply({"data": {"id": "x"}}, "m")


def test_transfer_size_caps_take_the_declared_size_plus_slack_under_an_absolute_cap():
    limits = TransferLimits(
        deadline_secs=60, min_bytes_per_sec=0, rate_window_secs=10, max_bytes=1000, size_slack_bytes=100
    )
    assert limits.download_cap(10).max_bytes == 110
    assert limits.download_cap(5000).max_bytes == 1000
    assert limits.download_cap(None).max_bytes == 1000
    ceiling = SizeCap(500, "the caller's limit")
    assert limits.download_cap(10, ceiling).max_bytes == 110
    assert limits.download_cap(5000, ceiling) == ceiling
    assert limits.download_cap(None, ceiling) == ceiling
    assert limits.download_cap(None, SizeCap(2000, "a higher limit")).max_bytes == 1000


def test_a_transfer_guard_stops_oversized_slow_and_late_transfers():
    limits = TransferLimits(
        deadline_secs=100, min_bytes_per_sec=10, rate_window_secs=5, max_bytes=1000, size_slack_bytes=0
    )
    clock = iter([0.0, 1.0, 6.0]).__next__
    guard = TransferGuard(limits.download_cap(None), limits, "download of x", clock=clock)
    guard.advance(40)  # at 1 s: within the first window
    with pytest.raises(TransferAborted, match=r"moved 41 bytes in 6.0 s, under the minimum of 10 bytes/s"):
        guard.advance(1)  # at 6 s: 41 bytes over a 6 s window
    guard = TransferGuard(limits.download_cap(None), limits, "download of x", clock=iter([0.0, 0.1]).__next__)
    with pytest.raises(TransferAborted, match=r"larger than its limit of 1000 bytes \(DOWNLOAD_MAX_BYTES\)"):
        guard.advance(1001)
    guard = TransferGuard(
        limits.download_cap(None), limits, "download of x", clock=iter([0.0, 101.0]).__next__
    )
    with pytest.raises(TransferAborted, match=r"did not finish within 100 s \(TRANSFER_DEADLINE_SECS\)"):
        guard.advance(5)


def test_redaction_covers_secrets_in_any_case_and_nested_payloads():
    redactor = Redactor(("ab12cd34ef", "reg-secret"))
    redactor.remember("domain-token-1")
    payload = {"reason": "key AB12CD34EF!", "events": [{"tail": ["reg-secret", "x domain-token-1"]}], "n": 3}
    assert redactor.scrub(payload) == {
        "reason": "key [redacted]!",
        "events": [{"tail": ["[redacted]", "x [redacted]"]}],
        "n": 3,
    }
    assert redactor.reveals("url://u:reg-secret@h") and not redactor.reveals("nothing here")


def test_run_py_environment_lacks_the_node_settings_and_any_secret():
    redactor = Redactor(("ab12cd34ef",))
    environ = {"PATH": "/bin", "REG_SECRET": "s", "CUDA_VISIBLE_DEVICES": "0", "COPY": "0xAB12CD34EF"}
    assert pipeline_environment(environ, frozenset({"REG_SECRET"}), redactor) == {
        "PATH": "/bin",
        "CUDA_VISIBLE_DEVICES": "0",
        "PYTHONUNBUFFERED": "1",
    }


def test_config_defaults_and_one_line_errors(tmp_path: Path):
    env = {"SECP256K1_PRIVHEX": "11" * 32, "REG_SECRET": "s"}
    config = load_config(env, tmp_path)
    assert config.dms_base_url == "https://dms.auki.network/v1"
    assert config.dds_base_url == "https://dds.auki.network"
    assert config.tasks_root == tmp_path / "tasks"
    assert config.run_script == tmp_path / "run.py"
    assert (config.register_interval_secs, config.health_port, config.kill_grace_secs) == (120, 8080, 10)
    assert config.client_id.startswith("splatter-node/")
    assert not config.disable_tasks_cleanup and config.log_format == "human"
    assert load_config(env | {"DISABLE_TASKS_CLEANUP": "true"}, tmp_path).disable_tasks_cleanup
    assert config.transfer == TransferLimits(
        deadline_secs=7200,
        min_bytes_per_sec=65536,
        rate_window_secs=60,
        max_bytes=32 * 1024**3,
        size_slack_bytes=1024**2,
    )
    documented = re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert config.node_variables == set(documented)  # .env.example lists every one
    assert config.secrets == ("11" * 32, "s")

    for broken, variable in (
        ({"REG_SECRET": "s"}, "SECP256K1_PRIVHEX"),
        ({"SECP256K1_PRIVHEX": "11" * 32}, "REG_SECRET"),
        (env | {"SECP256K1_PRIVHEX": "zz"}, "SECP256K1_PRIVHEX"),
        (env | {"SECP256K1_PRIVHEX": "00" * 32}, "SECP256K1_PRIVHEX"),
        (env | {"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        (env | {"DISABLE_TASKS_CLEANUP": "maybe"}, "DISABLE_TASKS_CLEANUP"),
        (env | {"REGISTER_INTERVAL_SECS": "0"}, "REGISTER_INTERVAL_SECS"),
        (env | {"HEALTH_PORT": "70000"}, "HEALTH_PORT"),
        (env | {"TRANSFER_DEADLINE_SECS": "0"}, "TRANSFER_DEADLINE_SECS"),
        (env | {"TRANSFER_MIN_BYTES_PER_SEC": "-1"}, "TRANSFER_MIN_BYTES_PER_SEC"),
        (env | {"DOWNLOAD_MAX_BYTES": "big"}, "DOWNLOAD_MAX_BYTES"),
    ):
        with pytest.raises(ConfigError, match=variable) as caught:
            load_config(broken, tmp_path)
        assert "\n" not in str(caught.value)


def test_a_quality_report_that_is_a_link_is_not_followed(tmp_path):
    from runner.quality import QUALITY, read_quality

    elsewhere = tmp_path / "secret.json"
    elsewhere.write_text('{"key": "not for DMS"}')
    (tmp_path / QUALITY).parent.mkdir(parents=True)
    (tmp_path / QUALITY).symlink_to(elsewhere)

    read = read_quality(tmp_path)

    assert read.figures is None and read.note.startswith("refined/splatter/quality.json cannot be read")


def test_run_py_output_without_newlines_is_cut_and_read_in_bounded_memory(tmp_path):
    """30 MB on one line, then a progress line: the runner keeps the line's redacted start, hears
    the progress line, and never holds the long line whole."""
    printer = "import sys; sys.stdout.write('s3cret' + 'x' * 30_000_000 + '\\n' + sys.argv[1] + '\\n')"
    progress_line = "[PROGRESS] stage=train pct=10"
    heard: list[str] = []
    tracemalloc.start()
    try:
        result = run_process(
            [sys.executable, "-c", printer, progress_line],
            cwd=tmp_path,
            env=dict(os.environ),
            cancel=CancelSignal(),
            on_line=heard.append,
            kill_grace_secs=1.0,
            redactor=Redactor(["s3cret"]),
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.returncode == 0
    assert heard == [REDACTED + "x" * (LINE_MAX_CHARS - len(REDACTED)), progress_line]
    assert peak < 4 * 1024 * 1024
