"""GET /destinations, GET /destinations/{name} and the forwarding attempts of GET /events/{id}."""

from __future__ import annotations

import falcon.testing
import pytest

import projections
from receiver import Config, create_app
from tests.forwarding_fixtures import SECRET, one_delivered_one_failed
from tests.support import SECRET as IMAGEKIT_SECRET
from tests.support import new_event


@pytest.fixture
def views(store, tmp_path):
    opened = projections.open_projections(store, tmp_path / "views.db")
    yield opened
    opened.close()


def client_for(store, views, **config):
    app = create_app(Config(secrets=(IMAGEKIT_SECRET,), **config), store, views)
    return falcon.testing.TestClient(app)


@pytest.fixture
def forwarded(store):
    store.append_many([new_event("evt-1"), new_event("evt-2")])
    return one_delivered_one_failed(store)


def test_destinations_show_counts_without_credentials_or_secret(store, views, forwarded):
    client = client_for(store, views)
    listed = client.simulate_get("/destinations")
    assert listed.status_code == 200
    (app,) = listed.json["destinations"]
    assert app["url"] == "http://127.0.0.1:9/hook"
    assert (app["delivered"], app["pending"], app["failed"]) == (1, 0, 1)
    one = client.simulate_get("/destinations/app")
    assert one.json["last_failure_reason"] == "connection_refused; given up after attempt 2"
    (failed,) = one.json["failed_events"]
    assert failed["event_id"] == forwarded[1]
    assert failed["last_attempt"]["error"] == "connection_refused"
    for answer in (listed, one):
        assert "hunter2" not in answer.text and SECRET[6:] not in answer.text


def test_an_unknown_destination_is_404_with_a_code(store, views):
    answer = client_for(store, views).simulate_get("/destinations/nobody")
    assert answer.status_code == 404 and answer.json["code"] == "destination_not_found"


def test_destinations_need_the_read_token(store, views, forwarded):
    client = client_for(store, views, read_token="t0ken")
    for path in ("/destinations", "/destinations/app"):
        assert client.simulate_get(path).status_code == 401
        allowed = client.simulate_get(path, headers={"Authorization": "Bearer t0ken"})
        assert allowed.status_code == 200


def test_an_event_lists_its_forwarding_attempts_newest_first(store, views, forwarded):
    client = client_for(store, views)
    attempts = client.simulate_get(f"/events/{forwarded[1]}").json["forwarding_attempts"]
    assert [(a["number"], a["status"], a["error"]) for a in attempts] == [
        (2, None, "connection_refused"),
        (1, 500, None),
    ]
    assert attempts[1]["response"] == "answer" and attempts[0]["destination"] == "app"
    assert client.simulate_get("/events/evt-1").json["forwarding_attempts"][0]["status"] == 200
