"""The server's log lines: one record is one line whatever a request carries, the fields
of a delivery on its line, and IKLEDGER_LOG_FORMAT=json for every process of `serve`."""

from __future__ import annotations

import io
import json
import logging
import sys

import falcon.testing
import httpx
import pytest

from receiver import Config, create_app, logs
from tests.support import SECRET, event_body, serve, signed

HOSTILE_PATHS = [
    "/events/abc%0a2026-12-07 19:00:00,000 ERROR ikledger.fake INJECTED",
    "/events/abc%0d%0a2026-12-07 19:00:00,000 ERROR ikledger.fake INJECTED",
    "/events/nul%00byte",
    "/events/high%ffbyte",
    "/events/back%5cslash%5cn",
]


@pytest.fixture
def lines(store):
    """The text lines the HTTP loggers write through `receiver.logs` at INFO."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logs.formatter("text"))
    loggers = [logging.getLogger(name) for name in ("ikledger.http", "ikledger.webhook")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield sink
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def client(store):
    return falcon.testing.TestClient(create_app(Config(secrets=(SECRET,)), store))


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_a_request_path_cannot_forge_or_break_a_log_line(client, lines, path):
    client.simulate_get(path)
    written = lines.getvalue().splitlines()
    assert len(written) == 1, written
    assert written[0].split(" ")[2:5] == ["INFO", "ikledger.http", "GET"], written
    assert all(ch.isprintable() for ch in written[0]), written


def test_a_refused_delivery_says_which_check_failed(client, lines):
    body = event_body()
    headers = signed(body, secret="whsec_" + "A" * 32)
    assert client.simulate_post("/webhook", body=body, headers=headers).status_code == 401
    old = signed(body, now=1_000_000)
    assert client.simulate_post("/webhook", body=body, headers=old).status_code == 401
    written = lines.getvalue().splitlines()
    assert "code=signature_invalid" in written[0]
    assert "code=signature_expired" in written[1]


def test_a_stored_delivery_names_its_event_position_and_outcome(client, lines):
    body = event_body("ev-logged")
    assert client.simulate_post("/webhook", body=body, headers=signed(body)).status_code == 200
    (line,) = lines.getvalue().splitlines()
    assert "event_id=ev-logged position=1 outcome=stored" in line


def test_json_lines_carry_the_fields_of_the_record():
    record = logging.LogRecord(
        "ikledger.http", logging.INFO, __file__, 1, "GET %s", ("/a\nb",), None
    )
    record.request_id, record.status, record.code = "r1", 401, "signature_invalid"
    line = logs.formatter("json").format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert document["message"] == "GET /a\nb"
    assert (document["level"], document["logger"], document["request_id"]) == (
        "INFO",
        "ikledger.http",
        "r1",
    )
    assert (document["status"], document["code"]) == (401, "signature_invalid")
    assert document["time"].endswith("Z")


def test_a_log_format_other_than_text_or_json_is_refused():
    with pytest.raises(ValueError, match="IKLEDGER_LOG_FORMAT"):
        Config.from_env({"IKLEDGER_LOG_FORMAT": "xml"})


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_writes_one_json_object_per_line_in_every_process(tmp_path, workers):
    env = {"IKLEDGER_LOG_FORMAT": "json"}
    args = ("--workers", workers, "--log-level", "debug")
    with serve(tmp_path / "log.db", env=env, args=args) as served:
        body = event_body("ev-json")
        bad = signed(body, secret="whsec_" + "A" * 32)
        assert httpx.post(served.base + "/webhook", content=body, headers=bad).status_code == 401
        good = signed(body)
        assert httpx.post(served.base + "/webhook", content=body, headers=good).status_code == 200
        httpx.get(served.base + HOSTILE_PATHS[0])
    written = [line for line in served.log_text().splitlines() if line.strip()]
    announced = [line for line in written if line.startswith("ikledger: listening")]
    records = [json.loads(line) for line in written if line not in announced]
    assert len(announced) == 1 and records
    refused = [r for r in records if r.get("status") == 401]
    assert refused and refused[0]["code"] == "signature_invalid"
    stored = [r for r in records if r.get("outcome") == "stored"]
    assert stored and (stored[0]["event_id"], stored[0]["position"]) == ("ev-json", 1)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    if workers == "2":  # the supervisor's own lines, and its workers'
        assert any(r["logger"] == "ikledger.children" for r in records)


def test_serve_text_log_has_no_line_a_request_wrote(tmp_path):
    with serve(tmp_path / "log.db", args=("--workers", "1", "--log-level", "info")) as served:
        for path in HOSTILE_PATHS:
            assert httpx.get(served.base + path).status_code == 404
    written = served.log_text().splitlines()
    forged = [line for line in written if "INJECTED" in line and "GET /events/" not in line]
    assert not forged, written
    hostile = [line for line in written if "GET /events/" in line]
    assert len(hostile) == len(HOSTILE_PATHS)
    assert all(ch.isprintable() for line in hostile for ch in line), hostile


def test_every_line_of_a_request_carries_its_id(store):
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logs.formatter("json"))
    logger = logging.getLogger("ikledger.webhook")
    logger.addHandler(handler)
    try:
        client = falcon.testing.TestClient(create_app(Config(secrets=(SECRET,)), store))
        store.close()  # the append fails: the webhook logs why, inside the request
        body = event_body("ev-unstored")
        answer = client.simulate_post("/webhook", body=body, headers=signed(body))
    finally:
        logger.removeHandler(handler)
    assert answer.status_code == 503
    (record,) = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert "not stored" in record["message"]
    assert record["request_id"] == answer.headers["x-request-id"]
    assert logs.current_request.get() is None  # nothing leaks past the request


def test_a_traceback_cannot_start_a_line_of_its_own():
    try:
        raise ValueError("no event 'x\n2026-12-07 19:00:00,000 ERROR ikledger.fake INJECTED'")
    except ValueError:
        record = logging.LogRecord(
            "ikledger.http", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    first, *rest = logs.formatter("text").format(record).splitlines()
    assert first.endswith("ERROR ikledger.http failed")
    assert rest and all(line.startswith("  | ") for line in rest), rest
