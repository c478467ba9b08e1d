"""Every route answers a coded 503 with Retry-After when the log or the read models fail.

Each failure is injected for real into the files the app reads: the read models'
file overwritten with garbage, their tables dropped by another connection, the log
closed under the app. `/metrics` and `/healthz` still answer, and say what failed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os

import falcon.testing
import pytest

import projections
from receiver import Config, create_app
from store import NewEvent, SQLiteStore
from store.sqlite_engine import sqlite3
from tests.support import SECRET, payload, payload_names, signed

SAMPLE = "http://ik.imagekit.io/demo/sample-video.mp4"
READY_ID = json.loads(payload("video.transformation.ready"))["id"]

# Routes that read the read models, and routes that read the log.
READ_MODEL_ROUTES = [
    ("/timeline", {"asset": SAMPLE}),
    ("/assets", {}),
    ("/transformations", {"status": "error"}),
    ("/events", {"asset": SAMPLE}),
]
LOG_ROUTES = [
    ("/events", {}),
    ("/events", {"asset": SAMPLE}),
    (f"/events/{READY_ID}", {}),
    (f"/events/{READY_ID}/body", {}),
    ("/timeline", {"asset": SAMPLE, "as_of": str(len(payload_names()))}),
]


@pytest.fixture
def views_path(tmp_path):
    return tmp_path / "views.db"


@pytest.fixture
def views(store, views_path):
    opened = projections.open_projections(store, views_path)
    yield opened
    opened.close()


@pytest.fixture
def client(store, views):
    client = falcon.testing.TestClient(create_app(Config(secrets=(SECRET,)), store, views))
    for name in payload_names():
        body = payload(name)
        assert client.simulate_post("/webhook", body=body, headers=signed(body)).status_code == 200
    projections.ProjectionRunner(views).catch_up()
    for path, params in READ_MODEL_ROUTES + LOG_ROUTES:  # all of them work before the fault
        assert client.simulate_get(path, params=params).status_code == 200, path
    return client


def overwrite_with_garbage(views_path) -> None:
    """The read models' file and its WAL files, same size, every byte replaced."""
    for path in views_path.parent.glob(views_path.name + "*"):
        size = path.stat().st_size
        with path.open("r+b") as file:
            file.write(b"\xde\xad\xbe\xef" * (size // 4 + 1))


def drop_timeline_tables(views_path) -> None:
    """Another connection drops every table of the timeline read model."""
    conn = sqlite3.connect(views_path, isolation_level=None)
    try:
        names = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'timeline_%'"
        ).fetchall()
        assert names
        for (name,) in names:
            conn.execute(f"DROP TABLE {name}")
    finally:
        conn.close()


def assert_unavailable(response, code: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json["code"] == code
    assert "Traceback" not in response.text and "sqlite" not in response.text.lower()


@pytest.mark.parametrize(("path", "params"), READ_MODEL_ROUTES)
def test_read_model_file_of_garbage_answers_503(client, views_path, path, params):
    overwrite_with_garbage(views_path)
    assert_unavailable(client.simulate_get(path, params=params), "read_model_unavailable")


@pytest.mark.parametrize(("path", "params"), READ_MODEL_ROUTES)
def test_read_model_tables_dropped_by_another_connection_answer_503(
    client, views_path, path, params
):
    drop_timeline_tables(views_path)
    assert_unavailable(client.simulate_get(path, params=params), "read_model_unavailable")


@pytest.mark.parametrize(("path", "params"), LOG_ROUTES)
def test_closed_store_answers_503(client, store, path, params):
    store.close()
    assert_unavailable(client.simulate_get(path, params=params), "store_unavailable")


def test_closed_store_answers_503_to_a_delivery(client, store):
    store.close()
    body = payload("video.transformation.accepted")
    response = client.simulate_post("/webhook", body=body, headers=signed(body))
    assert_unavailable(response, "store_unavailable")


def test_metrics_leave_out_unreadable_read_models_and_count_it(client, views_path):
    overwrite_with_garbage(views_path)
    for scrape in (1, 2):
        response = client.simulate_get("/metrics")
        assert response.status_code == 200
        assert "ikledger_projection_lag_events" not in response.text
        assert f'ikledger_collector_errors_total{{collector="projections"}} {scrape}.0' in (
            response.text
        )
        assert 'ikledger_collector_errors_total{collector="log"} 0.0' in response.text
        assert "ikledger_log_position" in response.text  # the log's figures still come


def test_metrics_of_a_closed_store_answer_200_and_count_it(client, store):
    store.close()
    response = client.simulate_get("/metrics")
    assert response.status_code == 200
    assert 'ikledger_collector_errors_total{collector="log"} 1.0' in response.text
    assert "ikledger_log_position" not in response.text


def test_healthz_reports_unreadable_read_models(client, views_path, caplog):
    overwrite_with_garbage(views_path)
    with caplog.at_level(logging.WARNING, logger="ikledger.http"):
        response = client.simulate_get("/healthz")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json["status"] == "degraded"
    assert response.json["read_model_error"] == "read_model_unavailable"
    assert "position" in response.json  # the log itself is fine
    # The detail (SQLite's words, the file's path) is for the server log only.
    assert "not a database" not in response.text and str(views_path) not in response.text
    assert "not a database" in caplog.text


def test_healthz_of_a_closed_store_is_unavailable(client, store, db_path):
    store.close()
    response = client.simulate_get("/healthz")
    assert response.status_code == 503 and response.json["status"] == "unavailable"
    assert response.json["error"] == "store_unavailable"
    assert "closed" not in response.text and str(db_path) not in response.text


@pytest.mark.parametrize("path", ["/ui", "/ui/failures", f"/ui/asset?url={SAMPLE}"])
def test_pages_answer_503_with_retry_after_when_read_models_are_unreadable(
    client, views_path, path
):
    overwrite_with_garbage(views_path)
    response = client.simulate_get(path)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_a_page_answers_500_for_a_projection_defect(store, views, caplog):
    from receiver.ui.pages import Page

    page = Page(store=store, views=views, stuck_after=900, now=lambda: None)
    req, resp = falcon.testing.create_req(path="/ui"), falcon.Response()
    with caplog.at_level(logging.ERROR, logger="ikledger.ui"), page.errors_as_pages(req, resp):
        cause = RuntimeError("no such table: timeline_events_g1")
        raise projections.ProjectionDefect("timeline", cause)
    assert resp.status == falcon.HTTP_500 and "Retry-After" not in resp.headers
    assert "no such table" not in resp.text and "no such table" in caplog.text


def test_unexpected_error_is_500_internal_error_logged_not_leaked(client, store, caplog):
    # A log written by something other than the receiver can hold a body that is not
    # UTF-8; GET /events/{id} cannot show it as text and fails with a plain bug.
    store.append(NewEvent("not-utf8", "file.created", "2024-01-01T00:00:00.000Z", b"\xff", "x"))
    with caplog.at_level(logging.ERROR, logger="ikledger.http"):
        response = client.simulate_get("/events/not-utf8")
    assert response.status_code == 500 and response.json["code"] == "internal_error"
    assert "Traceback" not in response.text and "UnicodeDecodeError" not in response.text
    request_id = response.headers["x-request-id"]
    assert request_id in response.json["description"]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert client.simulate_get("/events/not-utf8/body").content == b"\xff"


def test_a_writer_stuck_in_its_turn_answers_503_and_healthz_names_it(db_path):
    # Another process's writer stopped mid-commit holds the writers' lock file: this
    # one waits a bounded time, answers 503, and /healthz says why.
    with SQLiteStore(db_path, timeout=0.3) as store:
        client = falcon.testing.TestClient(create_app(Config(secrets=(SECRET,)), store))
        store.append(NewEvent("e0", "file.created", "2024-01-01T00:00:00.000Z", b"{}", "s"))
        peer = os.open(f"{db_path}-writer.lock", os.O_RDWR)
        try:
            fcntl.flock(peer, fcntl.LOCK_EX)
            body = payload("video.transformation.accepted")
            response = client.simulate_post("/webhook", body=body, headers=signed(body))
            assert response.status_code == 503
            health = client.simulate_get("/healthz")
            assert health.status_code == 503
            assert health.json["write_error"].startswith("writer_turn")
        finally:
            os.close(peer)  # the peer lets go: the same writer commits again
        response = client.simulate_post("/webhook", body=body, headers=signed(body))
        assert response.status_code == 200
