"""`stuck` in the timeline follows the listings' rule; GET /timeline and the CLI show it.

Also: a served timeline parses to exactly `timeline()`, and `/events?asset=` reads
one page of the asset's events, not all of them.
"""

from __future__ import annotations

import time

import falcon.testing
import httpx
import orjson
import pytest

import projections
from projections import asset_positions, assets, timeline, transformations
from receiver import Config, create_app
from store import SQLiteStore
from tests.projections_helpers import SAMPLE, log, pdb, runner, video_event
from tests.support import SECRET, invoke_cli, live_server, payload, signed

__all__ = ["log", "pdb", "runner"]  # fixtures

OTHER = "http://h/other.mp4"


def _stuck_log(log):
    log.append_many(
        [
            video_event("a1", "accepted", "2024-01-01T00:00:00.000Z", request_id="old"),
            video_event("a2", "accepted", "2024-01-01T00:20:00.000Z", request_id="new"),
            video_event("a3", "accepted", "2024-01-01T00:00:00.000Z", request_id="done"),
            video_event("r3", "ready", "2024-01-01T00:01:00.000Z", request_id="done"),
            video_event("a4", "accepted", "2024-01-01T00:00:00.000Z", request_id="o", asset=OTHER),
            # accepted twice: its latest event, not its first, says how long it has waited
            video_event("a5", "accepted", "2024-01-01T00:12:00.000Z", request_id="again"),
            video_event("a6", "accepted", "2024-01-01T00:00:00.000Z", request_id="again"),
        ]
    )


@pytest.mark.parametrize(
    "now", ["2024-01-01T00:10:00Z", "2024-01-01T00:25:00Z", "2024-01-01T00:35:00.001Z"]
)
@pytest.mark.parametrize("stuck_after", [60, 900])
def test_timeline_flags_stuck_exactly_as_the_listings_list_it(log, pdb, runner, now, stuck_after):
    _stuck_log(log)
    runner.catch_up()
    judged = {"now": now, "stuck_after": stuck_after}
    shown = timeline(pdb, SAMPLE, **judged)["transformations"]
    flagged = {t["request_id"] for t in shown if t["stuck"]}
    assert all(t["status"] == "accepted" for t in shown if t["stuck"])
    listed = transformations(pdb, status="stuck", **judged)["transformations"]
    assert flagged == {t["request_id"] for t in listed if t["asset"] == SAMPLE}
    assert all(t["stuck"] and t["status"] == "stuck" for t in listed)
    counts = {a["asset"]: a["counts"] for a in assets(pdb, **judged)["assets"]}
    assert counts[SAMPLE]["stuck"] == len(flagged)
    assert "done" not in flagged  # ready long ago: never stuck


def test_as_of_a_time_judges_stuck_at_that_time(log, pdb, runner):
    _stuck_log(log)
    runner.catch_up()
    past = timeline(pdb, SAMPLE, as_of="2024-01-01T00:10:00Z")["transformations"]
    assert [(t["request_id"], t["stuck"]) for t in past] == [
        ("old", False),
        ("done", False),
        ("again", False),
    ]
    later = timeline(pdb, SAMPLE, as_of="2024-01-01T00:20:00Z")["transformations"]
    assert {t["request_id"]: t["stuck"] for t in later} == {
        "old": True,
        "done": False,
        "again": False,
        "new": False,
    }


def test_asset_positions_read_one_page_filtered_in_sql(log, pdb, runner):
    _stuck_log(log)
    runner.catch_up()
    assert asset_positions(pdb, SAMPLE) == [1, 2, 3, 4, 6, 7]
    assert asset_positions(pdb, SAMPLE, after=1, limit=2) == [2, 3]
    ready = asset_positions(pdb, SAMPLE, types=["video.transformation.ready", "file.created"])
    assert ready == [4]
    assert asset_positions(pdb, SAMPLE, since="2024-01-01T00:01:00.000Z") == [2, 4, 6]


@pytest.fixture
def client(store, tmp_path):
    views = projections.open_projections(store, tmp_path / "views.db")
    app = create_app(
        Config(secrets=(SECRET,), stuck_after=60), store, views, now=lambda: "2024-01-01T00:21:30Z"
    )
    yield falcon.testing.TestClient(app), views
    views.close()


def test_get_timeline_marks_stuck_with_the_configured_threshold(store, client):
    client, views = client
    _stuck_log(store)
    projections.ProjectionRunner(views).catch_up()
    for _ in range(2):  # the second answer comes from the cache
        shown = client.simulate_get("/timeline", params={"asset": SAMPLE}).json
        flags = {t["request_id"]: (t["status"], t["stuck"]) for t in shown["transformations"]}
        assert flags == {
            "old": ("accepted", True),
            "new": ("accepted", True),  # 90 s old, stuck after 60 s
            "done": ("ready", False),
            "again": ("accepted", True),
        }
    listed = client.simulate_get("/transformations", params={"status": "stuck"}).json
    assert {t["request_id"] for t in listed["transformations"]} == {"old", "new", "o", "again"}


def test_events_of_an_asset_page_through_every_event_once(store, client):
    client, views = client
    _stuck_log(store)
    projections.ProjectionRunner(views).catch_up()
    seen, cursor = [], None
    for _ in range(10):
        params = {"asset": SAMPLE, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.simulate_get("/events", params=params).json
        seen += [e["position"] for e in page["events"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [1, 2, 3, 4, 6, 7]
    typed = {"asset": SAMPLE, "type": "video.transformation.ready", "limit": 1}
    assert client.simulate_get("/events", params=typed).json == {
        "events": [
            client.simulate_get("/events", params={"cursor": 3, "limit": 1}).json["events"][0]
        ],
        "next_cursor": None,
    }


class CountingStore:
    """A real store that records how many events each `get_positions` call reads."""

    def __init__(self, store):
        self.store = store
        self.read = []

    def get_positions(self, positions):
        found = self.store.get_positions(positions)
        self.read.append(len(found))
        return found

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_events_of_an_asset_read_only_the_page(store, tmp_path):
    counting = CountingStore(store)
    views = projections.open_projections(store, tmp_path / "views.db")
    try:
        app = create_app(Config(secrets=(SECRET,)), counting, views)
        store.append_many(
            [video_event(f"a{i}", "accepted", "2024-01-01T00:00:00.000Z") for i in range(50)]
        )
        projections.ProjectionRunner(views).catch_up()
        client = falcon.testing.TestClient(app)
        page = client.simulate_get("/events", params={"asset": SAMPLE, "limit": 5}).json
        assert [e["position"] for e in page["events"]] == [1, 2, 3, 4, 5]
        assert page["next_cursor"] == "5"
        assert counting.read == [6]  # the page and one more, to know whether there is a next
    finally:
        views.close()


def test_cli_timeline_shows_stuck_and_attempts(db_path):
    with SQLiteStore(db_path) as store:
        store.append_many(
            [
                video_event("a1", "accepted", "2024-01-01T00:00:00.000Z", request_id="old"),
                video_event("e1", "error", "2024-01-01T00:01:00.000Z", request_id="twice"),
                video_event("e2", "error", "2024-01-01T00:02:00.000Z", request_id="twice"),
            ]
        )
    shown = invoke_cli("timeline", SAMPLE, "--wide", db=db_path)  # every column on one line
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.decode().splitlines()
    assert lines[1].split()[:5] == ["STATUS", "KIND", "ACCEPTED", "READY/ERROR", "ATTEMPTS"]
    assert lines[2].startswith("stuck ") and lines[2].rstrip().endswith("old")
    assert lines[3].startswith("error ") and "2024-01-01 00:02:00.000  2 " in lines[3]
    as_json = orjson.loads(invoke_cli("timeline", SAMPLE, "--json", db=db_path).stdout)
    assert [(t["status"], t["stuck"], t["attempts"]) for t in as_json["transformations"]] == [
        ("accepted", True, 0),
        ("error", False, 2),
    ]


def test_served_timeline_parses_to_the_same_dict_as_timeline(db_path):
    names = [f"video.transformation.{kind}" for kind in ("accepted", "ready", "error")]
    with live_server(db_path) as base:
        for name in names:
            body = payload(name)
            sent = httpx.post(f"{base}/webhook", content=body, headers=signed(body), timeout=10)
            assert sent.status_code == 200
        deadline = time.monotonic() + 5
        while True:  # the server's catch-up shows new events within a second
            served = httpx.get(f"{base}/timeline", params={"asset": SAMPLE}, timeout=10)
            if served.json().get("position") == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        views_path = projections.default_projections_path(db_path)
        with (
            SQLiteStore(db_path) as store,
            projections.open_projections(store, views_path) as views,
        ):
            assert orjson.loads(served.content) == timeline(views, SAMPLE)
    assert served.json()["position"] == 3
