"""POST /webhook, /healthz and /metrics through falcon.testing over a real SQLite file."""

from __future__ import annotations

import json
import re

import falcon.testing
import pytest

from receiver import Config, create_app
from store import SQLiteStore
from store.sqlite_engine import sqlite3
from tests.support import SECRET, VECTORS, event_body, payload, payload_names, signed


@pytest.fixture
def config():
    return Config(secrets=(SECRET,), max_body=64 * 1024)


@pytest.fixture
def client(config, store):
    return falcon.testing.TestClient(create_app(config, store))


def post(client, body: bytes, headers: dict | None = None, **kwargs):
    return client.simulate_post(
        "/webhook", body=body, headers=signed(body) if headers is None else headers, **kwargs
    )


def journal(db_path) -> list[tuple]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(
            "SELECT outcome, status, reason, event_id FROM deliveries ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("scheme", ["standard", "legacy"])
def test_documented_payloads_are_stored_and_acknowledged(client, store, scheme):
    for position, name in enumerate(payload_names(), 1):
        body = payload(name)
        response = post(client, body, signed(body, scheme=scheme))
        assert response.status_code == 200, response.text
        assert response.json == {
            "received": True,
            "id": json.loads(body)["id"],
            "position": position,
            "duplicate": False,
            "conflict": False,
        }
        stored = store.get(json.loads(body)["id"])
        assert stored.body == body
        assert stored.scheme == ("standard-webhooks" if scheme == "standard" else "x-ik-signature")


def test_reference_vectors_through_http(store):
    app = create_app(Config(secrets=(VECTORS["secret"],)), store, clock=lambda: VECTORS["now_unix"])
    client = falcon.testing.TestClient(app)
    for case in VECTORS["cases"]:
        response = client.simulate_post(
            "/webhook",
            body=case["body"].encode(),
            headers={"content-type": "application/json", **case["headers"]},
        )
        if case["valid"]:
            assert response.status_code == 200, case["name"]
        else:
            assert response.status_code == 401, case["name"]
            assert response.json["code"].startswith("signature_")


def test_redelivery_answers_duplicate_with_original_position(client, store, db_path):
    body = event_body("evt-1")
    assert post(client, event_body()).json["position"] == 1
    assert post(client, body).json["position"] == 2
    again = post(client, body)
    assert again.status_code == 200
    assert again.json == {
        "received": True,
        "id": "evt-1",
        "position": 2,
        "duplicate": True,
        "conflict": False,
    }
    assert store.last_position() == 2
    assert [row[0] for row in journal(db_path)] == ["stored", "stored", "duplicate"]


def test_conflicting_redelivery_keeps_the_first_event(client, store, db_path):
    first, second = event_body("evt-1"), event_body("evt-1", type_="video.transformation.ready")
    post(client, first)
    response = post(client, second)
    assert response.status_code == 200 and response.json["duplicate"] is True
    assert response.json["conflict"] is True  # told apart from a true duplicate
    assert store.get("evt-1").body == first
    assert journal(db_path)[-1][:2] == ("conflict", 200)


@pytest.mark.parametrize(
    "body,headers,status,code",
    [
        (b"{}", {"content-type": "application/json"}, 401, "signature_missing"),
        (b'{"id": ', None, 400, "invalid_json"),
        (b'{"id":"a","type":"t","created_at":"nope","data":{}}', None, 400, "invalid_field"),
        (b'{"type":"t","created_at":"2024-01-01T00:00:00Z","data":{}}', None, 400, "missing_field"),
        (b"[1]", None, 400, "not_an_object"),
        (b'{"id":"a"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (b'{"id":"a"}', {}, 415, "unsupported_media_type"),
    ],
)
def test_bad_deliveries_get_documented_status_and_are_journalled(
    client, store, db_path, body, headers, status, code
):
    if headers is not None and "content-type" not in headers:
        response = client.simulate_post("/webhook", body=body)
    else:
        response = post(client, body, headers)
    assert response.status_code == status
    assert response.json["code"] == code
    assert response.json["description"]
    assert store.last_position() == 0
    post(client, event_body())  # journalling is asynchronous; the next durable append flushes it
    assert [row[:3] for row in journal(db_path) if row[0] == "rejected"] == [
        ("rejected", status, code)
    ]


def test_body_over_limit_is_refused_by_announced_length_and_while_reading(client, store):
    big = event_body(padding="x" * 70_000)
    response = post(client, big)
    assert response.status_code == 413 and response.json["code"] == "body_too_large"
    # A body with no Content-Length is still cut off while reading.
    response = client.simulate_request(
        "POST", "/webhook", body=big, headers={**signed(big)}, extras={"CONTENT_LENGTH": ""}
    )
    assert response.status_code == 413
    assert store.last_position() == 0


def test_locked_database_answers_503_with_retry_after(config, db_path):
    quick = SQLiteStore(db_path, timeout=0.2)
    client = falcon.testing.TestClient(create_app(config, quick))
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        body = event_body("evt-locked")
        response = post(client, body)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json["code"] == "store_unavailable"
        health = client.simulate_get("/healthz")
        assert health.status_code == 503
        blocker.execute("ROLLBACK")
        assert post(client, body).json == {
            "received": True,
            "id": "evt-locked",
            "position": 1,
            "duplicate": False,
            "conflict": False,
        }
        assert client.simulate_get("/healthz").status_code == 200
    finally:
        blocker.close()
        quick.close()


def test_healthz_reports_last_position(client):
    post(client, event_body())
    response = client.simulate_get("/healthz")
    assert response.status_code == 200
    assert response.json["position"] == 1


def test_metrics_count_outcomes_types_and_latency(client):
    body = payload("video.transformation.ready")
    post(client, body)
    post(client, body)
    client.simulate_post("/webhook", body=b"{}", headers={"content-type": "application/json"})
    text = client.simulate_get("/metrics").text
    assert 'ikledger_deliveries_total{outcome="stored"} 1.0' in text
    assert 'ikledger_deliveries_total{outcome="duplicate"} 1.0' in text
    assert 'ikledger_rejections_total{code="signature_missing"} 1.0' in text
    assert 'ikledger_events{type="video.transformation.ready"} 1.0' in text
    assert "ikledger_append_seconds_count 2.0" in text
    assert "ikledger_log_position 1.0" in text


def test_every_response_carries_a_request_id(client):
    assert client.simulate_get("/healthz").headers["x-request-id"]


def test_a_conflicting_body_is_shown_beside_the_stored_one(store, tmp_path):
    import projections

    views = projections.open_projections(store, tmp_path / "views.db")
    try:
        app = falcon.testing.TestClient(create_app(Config(secrets=(SECRET,)), store, views))
        first = event_body("evt-1")
        second = first.replace(b"2024-01-02T03:04:05.678Z", b"2024-01-02T03:09:00.000Z")
        post(app, first)
        assert post(app, second).json["conflict"] is True
        detail = app.simulate_get("/events/evt-1").json
        assert [c["body"] for c in detail["conflicts"]] == [second.decode()]
        page = app.simulate_get("/ui/event", params={"id": "evt-1"}).text
        marked = re.findall(r'<span class="differs">([^<]*)</span>', page)
        assert marked == [
            "  &#34;created_at&#34;: &#34;2024-01-02T03:04:05.678Z&#34;,",
            "  &#34;created_at&#34;: &#34;2024-01-02T03:09:00.000Z&#34;,",
        ]
        assert "does not yet hand them out" not in page
    finally:
        views.close()
