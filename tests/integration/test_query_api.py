"""The read-only query API over real read models, through falcon.testing."""

from __future__ import annotations

import json

import falcon.testing
import pytest

import projections
from receiver import Config, create_app
from tests.support import SECRET, payload, payload_names, signed

SAMPLE = "http://ik.imagekit.io/demo/sample-video.mp4"


@pytest.fixture
def views(store, tmp_path):
    opened = projections.open_projections(store, tmp_path / "views.db")
    yield opened
    opened.close()


def make_client(store, views, **config):
    app = create_app(
        Config(secrets=(SECRET,), **config), store, views, now=lambda: "2030-01-01T00:00:00Z"
    )
    return falcon.testing.TestClient(app)


@pytest.fixture
def client(store, views):
    client = make_client(store, views)
    for name in payload_names():
        body = payload(name)
        assert client.simulate_post("/webhook", body=body, headers=signed(body)).status_code == 200
    projections.ProjectionRunner(views).catch_up()
    return client


def test_timeline_of_documented_example(client):
    result = client.simulate_get("/timeline", params={"asset": SAMPLE}).json
    assert result["asset"] == SAMPLE and result["position"] == len(payload_names())
    ready, error = result["transformations"]
    assert ready["status"] == "ready"
    assert ready["accepted_to_ready_ms"] == 13242
    assert ready["timings"] == {"download_duration": 2713, "encoding_duration": 10175}
    assert [e["type"] for e in ready["events"]] == [
        "video.transformation.accepted",
        "video.transformation.ready",
    ]
    assert (error["status"], error["error_reason"]) == ("error", "download_failed")


def test_https_form_finds_the_same_asset(client):
    result = client.simulate_get("/timeline", params={"asset": SAMPLE.replace("http:", "https:")})
    assert result.status_code == 200 and len(result.json["transformations"]) == 2


def test_timeline_as_of_a_position_shows_the_past(client):
    accepted_at = next(
        p for p, n in enumerate(payload_names(), 1) if n == "video.transformation.accepted"
    )
    past = client.simulate_get(
        "/timeline", params={"asset": SAMPLE, "as_of": str(accepted_at)}
    ).json
    assert [t["status"] for t in past["transformations"]] == ["accepted"]
    assert past["position"] == accepted_at


def test_unknown_asset_is_404_with_code(client):
    result = client.simulate_get("/timeline", params={"asset": "https://nowhere.example/x.mp4"})
    assert result.status_code == 404 and result.json["code"] == "asset_not_found"


def test_missing_asset_parameter_is_400(client):
    result = client.simulate_get("/timeline")
    assert result.status_code == 400 and "asset" in result.json["description"]


def test_transformations_lists_failures_by_reason(client):
    result = client.simulate_get(
        "/transformations", params={"status": "error", "reason": "download_failed"}
    ).json
    assert [t["error_reason"] for t in result["transformations"]] == ["download_failed"]
    bad = client.simulate_get("/transformations", params={"status": "exploded"})
    assert bad.status_code == 400 and bad.json["code"] == "invalid_query"


def test_assets_paginate_newest_first(client):
    first = client.simulate_get("/assets", params={"limit": 1}).json
    assert len(first["assets"]) == 1 and first["next_cursor"]
    second = client.simulate_get(
        "/assets", params={"limit": 1, "cursor": first["next_cursor"]}
    ).json
    assert second["assets"][0]["asset"] != first["assets"][0]["asset"]
    assert first["assets"][0]["last_activity"] >= second["assets"][0]["last_activity"]


@pytest.mark.parametrize("cursor", [str(2**63), str(2**80), "-1"])
def test_an_events_cursor_outside_64_bits_is_invalid_query_not_500(client, cursor):
    answer = client.simulate_get("/events", params={"cursor": cursor})
    assert answer.status_code == 400 and answer.json["code"] == "invalid_query"


def test_events_filter_page_and_body(client):
    page = client.simulate_get("/events", params={"limit": 3}).json
    assert [e["position"] for e in page["events"]] == [1, 2, 3] and page["next_cursor"] == "3"
    rest = client.simulate_get("/events", params={"cursor": page["next_cursor"], "limit": 100}).json
    assert rest["events"][0]["position"] == 4 and rest["next_cursor"] is None
    video = client.simulate_get("/events", params={"asset": SAMPLE}).json["events"]
    assert {e["type"] for e in video} == {
        "video.transformation.accepted",
        "video.transformation.ready",
        "video.transformation.error",
    }
    ready_id = json.loads(payload("video.transformation.ready"))["id"]
    one = client.simulate_get(f"/events/{ready_id}").json
    assert one["body"].encode() == payload("video.transformation.ready")
    assert one["deliveries"][0]["outcome"] == "stored"
    raw = client.simulate_get(f"/events/{ready_id}/body")
    assert raw.content == payload("video.transformation.ready")
    assert client.simulate_get("/events/nope").json["code"] == "event_not_found"


def test_read_token_guards_every_query_route(store, views):
    client = make_client(store, views, read_token="s3cret-token")
    for path in (
        "/timeline?asset=x",
        "/assets",
        "/transformations",
        "/events",
        "/events/x",
        "/events/x/body",
    ):
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Basic s3cret-token"},
        ):
            response = client.simulate_get(path, headers=headers)
            assert response.status_code == 401, path
            assert response.json["code"] == "token_required"
    ok = client.simulate_get("/assets", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    assert client.simulate_get("/healthz").status_code == 200  # probes stay open


def test_healthz_and_metrics_report_projections(client):
    health = client.simulate_get("/healthz").json
    by_name = {p["name"]: p for p in health["projections"]}
    assert set(by_name) == {"timeline", "event_types", "search"}
    assert all(p["lag"] == 0 for p in by_name.values())
    metrics = client.simulate_get("/metrics").text
    assert 'ikledger_projection_lag_events{projection="timeline"} 0.0' in metrics
