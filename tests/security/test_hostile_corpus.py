"""Every hostile delivery of hostile_cases.json against one real `ikledger serve`.

For each case: the documented 4xx (never 2xx or 5xx), an error that says what was
wrong, the server still running, no new row in `events`, the rejection in the
delivery journal, and a valid event sent right after it lands.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.security.corpus import CORPUS, MAX_BODY, request_bytes
from tests.security.helpers import raw_request
from tests.support import event_body, query_rows, serve, signed

CASES = CORPUS["cases"]
CONTROLS = CORPUS["controls"]


def test_corpus_is_large_and_names_are_unique():
    names = [case["name"] for case in CASES + CONTROLS]
    assert len(CASES) >= 60
    assert len(names) == len(set(names))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("hostile") / "ikledger.db"
    with serve(db, env={"IKLEDGER_MAX_BODY": str(MAX_BODY)}) as served:
        yield served
    assert "Traceback" not in served.log_text()


def _last_seq(db) -> int:
    return query_rows(db, "SELECT coalesce(max(seq), 0) FROM deliveries")[0][0]


def _event_count(db) -> int:
    return query_rows(db, "SELECT count(*) FROM events")[0][0]


def _valid_event_lands(server) -> str:
    body = event_body()
    response = httpx.post(f"{server.base}/webhook", content=body, headers=signed(body), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False
    return response.json()["id"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_hostile_delivery_is_refused_and_journalled(server, case):
    expect = case["expect"]
    events_before, seq_before = _event_count(server.db), _last_seq(server.db)

    head, wire, _ = request_bytes(case)
    response = raw_request(server.port, head, wire)

    assert response.status == expect["status"], response.body[:300]
    assert 400 <= response.status < 500
    if expect.get("json", True):
        assert response.headers["content-type"].startswith("application/json")
        error = json.loads(response.body)
        assert error["code"] == expect["code"]
        assert error["description"]
        assert expect.get("says", "") in error["description"]
    else:
        assert expect["says"] in response.body.decode()

    assert server.alive()
    assert httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200
    assert _event_count(server.db) == events_before

    landed = _valid_event_lands(server)
    assert _event_count(server.db) == events_before + 1
    journal = query_rows(
        server.db,
        "SELECT outcome, status, reason, event_id FROM journal WHERE seq > ? ORDER BY seq",
        (seq_before,),
    )
    refused = (
        [("rejected", expect["status"], expect["code"])] if expect.get("journal", True) else []
    )
    assert [row[:3] for row in journal] == [*refused, ("stored", 200, None)]
    assert journal[-1][3] == landed


@pytest.mark.parametrize("case", CONTROLS, ids=[case["name"] for case in CONTROLS])
def test_hostile_looking_but_valid_delivery_is_stored_verbatim(server, case):
    events_before = _event_count(server.db)
    head, wire, body = request_bytes(case)
    response = raw_request(server.port, head, wire)
    assert response.status == 200, response.body[:300]
    receipt = json.loads(response.body)
    assert receipt["duplicate"] is False and receipt["id"] == json.loads(body)["id"]
    stored = query_rows(server.db, "SELECT body FROM events WHERE id = ?", (receipt["id"],))
    assert stored == [(body,)]
    assert _event_count(server.db) == events_before + 1
    tables = {name for (name,) in query_rows(server.db, "SELECT name FROM sqlite_master")}
    assert {"events", "deliveries"} <= tables
    assert httpx.get(f"{server.base}/healthz", timeout=5).json()["status"] == "ok"
