"""GET /stats, GET /events?q= and GET /rejections over real read models (issue 21)."""

from __future__ import annotations

import time
from collections import Counter

import falcon.testing
import orjson
import pytest

import projections
from receiver import Config, create_app
from store import NewEvent
from tests.integration.test_overview_read_models import NOW, _hand_fixture
from tests.support import SECRET, payload, signed
from tests.support import new_event as new

TOKEN = {"Authorization": "Bearer s3cret-token"}
BOUND = 60.0  # seconds the refusals may take to be journalled


@pytest.fixture
def views(store, tmp_path):
    opened = projections.open_projections(store, tmp_path / "views.db")
    yield opened
    opened.close()


@pytest.fixture
def client(store, views):
    app = create_app(
        Config(secrets=(SECRET,), read_token="s3cret-token"), store, views, now=lambda: NOW
    )
    return falcon.testing.TestClient(app, headers=TOKEN)


@pytest.fixture
def hand(store, views):
    events = _hand_fixture()
    store.append_many(events)
    projections.ProjectionRunner(views).catch_up()
    return events


def test_stats_equal_the_read_model_and_a_count_by_hand(client, views, hand):
    got = client.simulate_get("/stats", params={"bucket": "1h"})
    assert got.status_code == 200
    assert got.json == projections.stats(views, bucket="1h", now=NOW)
    assert got.json["events_by_type"] == dict(Counter(e.type for e in hand))
    # r1, r2 ready; r3 error; r4, r5, r6 accepted before the cutoff (00:47); r7, r8 after
    assert got.json["transformations"] == {"ready": 2, "error": 1, "stuck": 3, "running": 2}
    assert sum(b["events"] for b in got.json["buckets"]) == len(hand)


def test_stats_range_and_bucket_are_query_parameters(client, views, hand):
    params = {"since": "2024-01-01T00:40:00Z", "until": "2024-01-01T00:50:00Z", "bucket": "5m"}
    got = client.simulate_get("/stats", params=params).json
    assert got == projections.stats(views, params["since"], params["until"], "5m", now=NOW)
    assert [b["start"] for b in got["buckets"]] == [
        "2024-01-01T00:40:00.000Z",
        "2024-01-01T00:45:00.000Z",
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"bucket": "1w"},
        {"bucket": ""},
        {"since": "yesterday"},
        {"since": "2024-01-02", "until": "2024-01-01"},
    ],
)
def test_stats_refuse_a_bad_query_with_400(client, hand, params):
    got = client.simulate_get("/stats", params=params)
    assert got.status_code == 400 and got.json["code"] == "invalid_query"


@pytest.mark.parametrize("path", ["/stats", "/rejections"])
def test_overview_routes_need_the_read_token(client, path):
    got = client.simulate_get(path, headers={"Authorization": "Bearer wrong"})
    assert got.status_code == 401 and got.json["code"] == "token_required"


def _doc_event(event_id: str, event_type: str, created_at: str, data: dict) -> NewEvent:
    doc = {"type": event_type, "id": event_id, "created_at": created_at, "data": data}
    return NewEvent(event_id, event_type, created_at, orjson.dumps(doc), "standard-webhooks")


@pytest.fixture
def bodies(store, views):
    store.append_many(
        [
            _doc_event(
                "u1",
                "upload.pre-transform.success",
                "2024-01-01T00:00:00.000Z",
                {"name": "red fox"},
            ),
            _doc_event("u2", "file.created", "2024-01-02T00:00:00.000Z", {"name": "fox red"}),
            _doc_event("u3", "folder.deleted", "2024-01-03T00:00:00.000Z", {"path": "/lazy dog"}),
        ]
    )
    projections.ProjectionRunner(views).catch_up()


def _ids(answer) -> list[str]:
    return [e["id"] for e in answer.json["events"]]


def test_events_q_searches_the_bodies_newest_first(client, bodies):
    assert _ids(client.simulate_get("/events", params={"q": "fox"})) == ["u2", "u1"]
    assert _ids(client.simulate_get("/events", params={"q": '"red fox"'})) == ["u1"]
    assert _ids(client.simulate_get("/events", params={"q": "fox", "type": "file.created"})) == [
        "u2"
    ]
    until = {"q": "fox", "until": "2024-01-02T00:00:00Z"}
    assert _ids(client.simulate_get("/events", params=until)) == ["u1"]
    assert _ids(client.simulate_get("/events", params={"q": "giraffe"})) == []


def test_events_q_pages_below_the_cursor(client, bodies):
    first = client.simulate_get("/events", params={"q": "fox", "limit": 1}).json
    assert [e["id"] for e in first["events"]] == ["u2"] and first["next_cursor"] == "2"
    rest = client.simulate_get(
        "/events", params={"q": "fox", "limit": 1, "cursor": first["next_cursor"]}
    ).json
    assert [e["id"] for e in rest["events"]] == ["u1"] and rest["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [{"q": "  "}, {"q": "fox", "type": ["a", "b"]}, {"q": "fox", "asset": "http://h/a.mp4"}],
)
def test_events_q_refuses_a_bad_query_with_400(client, bodies, params):
    got = client.simulate_get("/events", params=params)
    assert got.status_code == 400 and got.json["code"] == "invalid_query"


def _refused(client, store, count: int) -> dict:
    """GET /rejections once `count` refusals are journalled (they land with a later group)."""
    deadline = time.monotonic() + BOUND
    while len((answer := client.simulate_get("/rejections").json)["rejections"]) < count:
        assert time.monotonic() < deadline, "refusals never journalled"
        store.append(new(f"flush-{time.monotonic_ns()}"))
    return answer


def test_rejections_list_refused_posts_newest_first_with_counts(client, store):
    body = payload("video.transformation.ready")
    old = signed(body, now=time.time() - 3600)  # outside the signature window
    assert client.simulate_post("/webhook", body=body, headers=old).status_code == 401
    wrong = signed(body, secret="whsec_" + "A" * 32)
    assert client.simulate_post("/webhook", body=body, headers=wrong).status_code == 401
    answer = _refused(client, store, 2)
    assert sum(answer["counts"].values()) == 2
    newest, oldest = answer["rejections"]
    assert newest["seq"] > oldest["seq"]
    assert answer["counts"] == dict(Counter(r["reason"] for r in answer["rejections"]))
    for row in answer["rejections"]:
        assert (row["outcome"], row["status"], row["size"]) == ("rejected", 401, len(body))
        assert row["remote_addr"] and row["received_at"].endswith("Z")
    later = client.simulate_get("/rejections", params={"since": "2999-01-01T00:00:00Z"}).json
    assert later == {
        "since": "2999-01-01T00:00:00.000Z",
        "until": None,
        "counts": {},
        "rejections": [],
    }


def test_rejections_refuse_a_bad_range_with_400(client):
    got = client.simulate_get("/rejections", params={"since": "soon"})
    assert got.status_code == 400 and got.json["code"] == "invalid_query"
