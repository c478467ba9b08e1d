"""The Overview, Events and Refused deliveries pages, without a browser (issue 21).

The Overview's numbers are checked against GET /stats and against a count made by
hand from the events the test wrote; the pages' charts against what accessibility
asks of them (role="img", a label, a title per bar or point).
"""

from __future__ import annotations

import html
import re
import time
from collections import Counter

import falcon.testing
import orjson
import pytest

import projections
from receiver import Config, create_app
from store import NewEvent, Rejection, open_store
from tests.integration.test_overview_read_models import NOW, B, _hand_fixture
from tests.support import new_event as new

RANGE = {"since": "2024-01-01T00:00:00Z", "until": "2024-01-01T03:00:00Z", "bucket": "1h"}


@pytest.fixture
def served(tmp_path):
    store = open_store(str(tmp_path / "log.db"))
    views = projections.open_projections(store, str(tmp_path / "views.db"))
    events = _hand_fixture()
    store.append_many(events)
    projections.ProjectionRunner(views).catch_up()
    app = create_app(Config(secrets=("s",)), store, views, now=lambda: NOW)
    yield falcon.testing.TestClient(app), store, views, events
    views.close()
    store.close()


def page(client, path: str, **params) -> str:
    answer = client.simulate_get(path, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")
    return answer.text


def text_of(document: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', document)
    assert found, element_id
    return html.unescape(found.group(1)).strip()


def table_rows(document: str, table_class: str) -> list[list[str]]:
    """The cells' text of each body row of the table with that class."""
    table = re.search(
        rf'<table class="[^"]*\b{table_class}\b[^"]*">(.*?)</table>', document, re.DOTALL
    )
    assert table, table_class
    body = table.group(1).split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL)
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.DOTALL)
        ]
        for r in rows
    ]


def test_overview_numbers_equal_get_stats_and_a_count_by_hand(served):
    client, _store, _views, events = served
    document = page(client, "/ui/overview", **RANGE)
    api = client.simulate_get("/stats", params=RANGE).json
    # By hand: r1, r2 ready; r3 error; r4, r5, r6 accepted before NOW - 15 min; r7, r8 after.
    by_hand = {"ready": 2, "error": 1, "stuck": 3, "running": 2}
    assert api["transformations"] == by_hand
    for status, n in by_hand.items():
        assert text_of(document, f"total-{status}") == str(n)
    assert (
        text_of(document, "total-events")
        == str(len(events))
        == str(sum(api["events_by_type"].values()))
    )
    types = {t: int(n) for t, n in table_rows(document, "types")}
    assert types == api["events_by_type"] == dict(Counter(e.type for e in events))
    buckets = table_rows(document, "buckets")
    assert [[r[0], *map(int, r[1:5])] for r in buckets] == [
        [
            b["start"].replace("T", " ").removesuffix("Z"),
            b["events"],
            b["ready"],
            b["error"],
            b["stuck"],
        ]
        for b in api["buckets"]
    ]
    # p50 120,000 ms, p95 600,000 ms: the histogram's values are within 1 % (600,000 → 599,209)
    assert buckets[0][5:] == ["2 min 0 s", "9 min 59 s"]
    assert {r: int(n) for r, n in table_rows(document, "reasons")} == api["errors_by_reason"]
    assert api["errors_by_reason"] == {"download_failed": 1}


def test_overview_charts_are_accessible_pictures_with_numbers_as_text(served):
    client = served[0]
    document = page(client, "/ui/overview", **RANGE)
    charts = re.findall(r'<svg class="chart" role="img" aria-labelledby="([\w-]+)-label"', document)
    assert charts == ["by-status", "by-reason", "durations"]
    for chart in charts:
        assert re.search(rf'<title id="{chart}-label">[^<]+</title>', document), chart
    segments = re.findall(
        r'<rect class="seg seg-(\w+)"[^>]*data-n="(\d+)"><title>([^<]+)</title>', document
    )
    assert sorted((k, int(n)) for k, n, _ in segments) == [("error", 1), ("ready", 2), ("stuck", 3)]
    assert all("2024-01-01T00:00:00.000Z: 2 ready, 1 error, 3 stuck" == t for _, _, t in segments)
    points = re.findall(r'<circle class="point"[^>]*><title>([^<]+)</title>', document)
    assert points == [
        "2024-01-01T00:00:00.000Z: p50 2 min 0 s",
        "2024-01-01T00:00:00.000Z: p95 9 min 59 s",  # 10 min within 1 %
    ]
    assert "<script" not in document and " style=" not in document


def test_overview_lists_what_is_stuck_now_with_links(served):
    document = page(served[0], "/ui/overview", **RANGE)
    rows = table_rows(document, "stuck")
    assert sorted(r[1] for r in rows) == ["r4", "r5", "r6"]
    assert f'href="/ui/asset?url={B.replace(":", "%3A")}"' in document


def test_overview_is_first_in_the_navigation_and_the_front_door(served):
    client = served[0]
    nav = re.search(r"<nav>(.*?)</nav>", page(client, "/ui/overview"), re.DOTALL).group(1)
    assert re.findall(r'href="([^"]+)"', nav)[:3] == ["/ui/overview", "/ui", "/ui/events"]
    assert "/ui/rejections" in nav
    front = client.simulate_get("/")
    assert front.status_code == 303 and front.headers["location"] == "/ui/overview"


@pytest.mark.parametrize("params", [{"bucket": "1w"}, {"since": "last week"}])
def test_overview_refuses_a_bad_range_with_a_400_page(served, params):
    answer = served[0].simulate_get("/ui/overview", params=params)
    assert answer.status_code == 400 and "<h1>" in answer.text


def _body_event(event_id: str, event_type: str, created_at: str, words: str) -> NewEvent:
    doc = {"type": event_type, "id": event_id, "created_at": created_at, "data": {"name": words}}
    return NewEvent(event_id, event_type, created_at, orjson.dumps(doc), "standard-webhooks")


def test_events_page_lists_every_type_newest_first_and_searches_bodies(served):
    client, store, views, events = served
    store.append_many(
        [
            _body_event(
                "up1", "upload.pre-transform.success", "2024-01-05T00:00:00.000Z", "red fox"
            ),
            _body_event("fo1", "folder.created", "2024-01-06T00:00:00.000Z", "lazy fox dog"),
        ]
    )
    projections.ProjectionRunner(views).catch_up()
    everything = table_rows(page(client, "/ui/events", limit="1000"), "events")
    assert [r[3] for r in everything] == ["fo1", "up1", *reversed([e.id for e in events])]
    assert [int(r[0]) for r in everything] == sorted((int(r[0]) for r in everything), reverse=True)
    found = table_rows(page(client, "/ui/events", q="fox"), "events")
    assert [r[3] for r in found] == ["fo1", "up1"]
    assert [r[3] for r in table_rows(page(client, "/ui/events", q='"fox dog"'), "events")] == [
        "fo1"
    ]
    by_type = table_rows(page(client, "/ui/events", type="brand.new.type"), "events")
    assert [r[3] for r in by_type] == ["o2"]
    window = {"since": "2024-01-05T00:00:00Z", "until": "2024-01-06T00:00:00Z"}
    assert [r[3] for r in table_rows(page(client, "/ui/events", **window), "events")] == ["up1"]
    first = page(client, "/ui/events", limit="1")
    assert [r[3] for r in table_rows(first, "events")] == ["fo1"]
    older = html.unescape(re.search(r'<a href="([^"]+)" rel="next">', first).group(1))
    assert [r[3] for r in table_rows(page(client, older), "events")] == ["up1"]


def test_events_page_refuses_a_search_without_words_with_a_400_page(served):
    answer = served[0].simulate_get("/ui/events", params={"q": '""'})
    assert answer.status_code == 400


def test_refused_deliveries_page_shows_each_refusal_and_counts_by_reason(served):
    client, store, _views, _events = served
    store.record_rejection(Rejection("signature_expired", 401, size=512, remote_addr="203.0.113.9"))
    store.record_rejection(Rejection("signature_expired", 401, size=640, remote_addr="203.0.113.9"))
    store.record_rejection(
        Rejection("body_too_large", 413, size=9_000_000, remote_addr="198.51.100.4")
    )
    deadline = time.monotonic() + 60
    while len(store.rejections()) < 3:
        assert time.monotonic() < deadline, "refusals never journalled"
        store.append(new(f"flush-{time.monotonic_ns()}"))
    document = page(client, "/ui/rejections", since="")
    rows = table_rows(document, "rejections")
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("413", "body_too_large", "198.51.100.4", "9000000"),
        ("401", "signature_expired", "203.0.113.9", "640"),
        ("401", "signature_expired", "203.0.113.9", "512"),
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", r[0]) for r in rows)
    counts = {reason: int(n) for reason, n in table_rows(document, "reasons")}
    assert counts == {"signature_expired": 2, "body_too_large": 1}
    assert counts == client.simulate_get("/rejections").json["counts"]
    assert '<g class="reason-row" data-reason="signature_expired">' in document
    later = page(client, "/ui/rejections", since="2999-01-01T00:00:00Z")
    assert "No delivery was refused in this range." in later


def test_asset_page_zooms_to_from_and_to(served):
    client = served[0]
    whole = page(client, "/ui/asset", url=B)
    assert len(re.findall(r'<g class="row row-\w+" data-request-id=', whole)) == 6
    zoomed = page(
        client, "/ui/asset", url=B, **{"from": "2024-01-01T00:19:00Z", "to": "2024-01-01T00:22:00Z"}
    )
    assert re.findall(r'<g class="row row-\w+" data-request-id="(\w+)"', zoomed) == ["r3"]
    assert "1 transformation of 6 in the window" in zoomed
    assert 'class="unzoom"' in zoomed and 'class="zoom-link"' in zoomed


@pytest.mark.parametrize(
    "window",
    [
        {"from": "2024-01-01T00:19:00Z"},
        {"from": "2024-01-01T01:00:00Z", "to": "2024-01-01T00:00:00Z"},
        {"from": "x", "to": "y"},
    ],
)
def test_asset_page_refuses_a_bad_zoom_with_a_400_page(served, window):
    answer = served[0].simulate_get("/ui/asset", params={"url": B, **window})
    assert answer.status_code == 400
