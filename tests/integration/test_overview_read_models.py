"""The overview's read models: `stats` against counts made by hand, and body search."""

import orjson
import pytest

from projections import InvalidQuery, ProjectionRunner, open_projections, search_events, stats
from projections.runner import OVERVIEW_PROJECTIONS
from store import NewEvent
from tests.projections_helpers import log, other_event, pdb, video_event  # noqa: F401

A, B = "http://h/a.mp4", "http://h/b.mp4"
NOW = "2024-01-01T01:02:00.000Z"  # stuck_after 15 min: cutoff 00:47, in bucket 00:45


def ms(value: int):
    """A duration as `stats` reports it: from a histogram, within 1 % of the exact value."""
    return pytest.approx(value, rel=0.01)


def _hand_fixture():
    return [
        # r1: accepted 00:01, ready 00:03 -> ready, 120,000 ms, bucket 00:00
        video_event("a1", "accepted", "2024-01-01T00:01:00.000Z", asset=A, request_id="r1"),
        video_event("a2", "ready", "2024-01-01T00:03:00.000Z", asset=A, request_id="r1"),
        # r2: accepted 00:02, error 00:06 then ready 00:12 -> ready, 600,000 ms, bucket 00:10
        video_event("b1", "accepted", "2024-01-01T00:02:00.000Z", asset=A, request_id="r2"),
        video_event("b2", "error", "2024-01-01T00:06:00.000Z", asset=A, request_id="r2"),
        video_event("b3", "ready", "2024-01-01T00:12:00.000Z", asset=A, request_id="r2"),
        # r3: error (download_failed), bucket 00:20
        video_event("c1", "accepted", "2024-01-01T00:20:00.000Z", asset=B, request_id="r3"),
        video_event(
            "c2",
            "error",
            "2024-01-01T00:21:00.000Z",
            asset=B,
            request_id="r3",
            reason="download_failed",
        ),
        # Accepted only: r4 at 00:30 and r5 at 00:44 -> stuck; in the cutoff's bucket r6 at
        # 00:46 -> stuck, r8 at 00:48 -> running; r7 at 00:58 -> running.
        video_event("d1", "accepted", "2024-01-01T00:30:00.000Z", asset=B, request_id="r4"),
        video_event("e1", "accepted", "2024-01-01T00:44:00.000Z", asset=B, request_id="r5"),
        video_event("f1", "accepted", "2024-01-01T00:46:00.000Z", asset=B, request_id="r6"),
        video_event("g1", "accepted", "2024-01-01T00:58:00.000Z", asset=B, request_id="r7"),
        video_event("h1", "accepted", "2024-01-01T00:48:00.000Z", asset=B, request_id="r8"),
        other_event("o1", "file.created", "2024-01-01T00:04:00.000Z"),
        other_event("o2", "brand.new.type", "2024-01-01T02:10:00.000Z"),
    ]


@pytest.fixture
def filled(log, pdb):  # noqa: F811
    log.append_many(_hand_fixture())
    ProjectionRunner(pdb).catch_up()  # the default set: timeline, event_types, search
    return pdb


def test_stats_equal_a_count_made_by_hand(filled):
    got = stats(filled, bucket="1h", now=NOW)
    assert got["events_by_type"] == {
        "brand.new.type": 1,
        "file.created": 1,
        "video.transformation.accepted": 8,
        "video.transformation.error": 2,
        "video.transformation.ready": 2,
    }
    assert got["transformations"] == {"ready": 2, "error": 1, "stuck": 3, "running": 2}
    assert got["errors_by_reason"] == {"download_failed": 1}  # r2's error was retried: ready
    # Nearest rank of [120000, 600000]: p50 rank 1, p95 and p99 rank 2.
    assert got["accepted_to_ready_ms"] == {
        "count": 2,
        "p50": ms(120000),
        "p95": ms(600000),
        "p99": ms(600000),
    }
    assert got["buckets"] == [
        {
            "start": "2024-01-01T00:00:00.000Z",
            "events": 13,
            "ready": 2,
            "error": 1,
            "stuck": 3,
            "p50_ms": ms(120000),
            "p95_ms": ms(600000),
        },
        {
            "start": "2024-01-01T02:00:00.000Z",
            "events": 1,
            "ready": 0,
            "error": 0,
            "stuck": 0,
            "p50_ms": None,
            "p95_ms": None,
        },
    ]
    assert got["transformations_by_format"] == {
        "webm": {"ready": 2, "error": 1, "stuck": 3, "running": 2}
    }


def test_stats_by_five_minutes_split_the_cutoffs_bucket(filled):
    got = stats(filled, "2024-01-01T00:40:00Z", "2024-01-01T00:50:00Z", bucket="5m", now=NOW)
    assert got["transformations"] == {"ready": 0, "error": 0, "stuck": 2, "running": 1}
    assert [{k: b[k] for k in ("start", "events", "stuck")} for b in got["buckets"]] == [
        {"start": "2024-01-01T00:40:00.000Z", "events": 1, "stuck": 1},
        {"start": "2024-01-01T00:45:00.000Z", "events": 2, "stuck": 1},
    ]
    assert all(b["ready"] == b["error"] == 0 and b["p50_ms"] is None for b in got["buckets"])
    assert got["accepted_to_ready_ms"]["count"] == 0


def test_stats_percentiles_per_bucket_by_nearest_rank(filled):
    got = stats(filled, bucket="5m", now=NOW)
    by_start = {b["start"][11:16]: (b["p50_ms"], b["p95_ms"]) for b in got["buckets"]}
    assert by_start["00:00"] == (ms(120000), ms(120000))  # r1 alone
    assert by_start["00:10"] == (ms(600000), ms(600000))  # r2 alone
    assert by_start["00:20"] == (None, None)  # an error: no duration


def test_stats_range_is_whole_buckets(filled):
    got = stats(filled, "2024-01-01T00:11:00Z", "2024-01-01T00:13:00Z", bucket="5m", now=NOW)
    assert (got["since"], got["until"]) == ("2024-01-01T00:10:00.000Z", "2024-01-01T00:15:00.000Z")
    assert got["transformations"]["ready"] == 1
    assert got["accepted_to_ready_ms"] == {
        "count": 1,
        "p50": ms(600000),
        "p95": ms(600000),
        "p99": ms(600000),
    }


@pytest.mark.parametrize("bucket", ["1m", "", "1w"])
def test_stats_refuse_an_unknown_bucket(pdb, bucket):  # noqa: F811
    with pytest.raises(InvalidQuery):
        stats(pdb, bucket=bucket)


def _body_event(event_id: str, event_type: str, data: dict) -> NewEvent:
    doc = {
        "type": event_type,
        "id": event_id,
        "created_at": "2024-01-01T00:00:00.000Z",
        "data": data,
    }
    return NewEvent(event_id, event_type, doc["created_at"], orjson.dumps(doc), "standard-webhooks")


@pytest.fixture
def bodies(log, pdb):  # noqa: F811
    log.append_many(
        [
            _body_event("u1", "upload.pre-transform.success", {"name": "red fox jumps"}),
            _body_event("u2", "file.created", {"name": "fox red", "tags": ["zebra"]}),
            _body_event("u3", "folder.deleted", {"path": "/lazy dog (old) NEAR -x"}),
            NewEvent(
                "u4", "brand.new", "2024-01-01T00:00:00.000Z", b"not json", "standard-webhooks"
            ),
        ]
    )
    ProjectionRunner(pdb, OVERVIEW_PROJECTIONS).catch_up()
    return pdb


def _ids(found):
    return [e["id"] for e in found]


def test_search_finds_a_word_in_one_body_only(bodies):
    assert _ids(search_events(bodies, "zebra")) == ["u2"]
    assert _ids(search_events(bodies, "FOX")) == ["u2", "u1"]  # newest first
    assert _ids(search_events(bodies, "fox jumps")) == ["u1"]  # every word
    assert search_events(bodies, "giraffe") == []


def test_search_phrase_keeps_word_order(bodies):
    assert _ids(search_events(bodies, '"red fox"')) == ["u1"]
    assert _ids(search_events(bodies, '"fox red"')) == ["u2"]


def test_search_filters_and_pages(bodies):
    assert _ids(search_events(bodies, "fox", type="file.created")) == ["u2"]
    assert _ids(search_events(bodies, "fox", limit=1)) == ["u2"]
    assert _ids(search_events(bodies, "fox", after=2)) == ["u1"]
    assert _ids(search_events(bodies)) == ["u4", "u3", "u2", "u1"]  # any type, even not JSON


@pytest.mark.parametrize(
    "q", ['fox "', 'fox"', "fox*", "NEAR(fox red)", "-x", "(old)", "fox OR", "a:b", "'); DROP"]
)
def test_search_syntax_is_only_text(bodies, q):
    search_events(bodies, q)  # never an FTS5 or SQL error


def test_search_words_of_operators_are_words(bodies):
    assert _ids(search_events(bodies, "NEAR (old) -x")) == ["u3"]


@pytest.mark.parametrize("q", ["", "  ", "*", '""', "()"])
def test_search_without_a_word_is_an_invalid_query(bodies, q):
    with pytest.raises(InvalidQuery):
        search_events(bodies, q)


def test_search_index_costs_under_a_third_of_the_body_bytes(tmp_path):
    from bench.events import fill
    from projections import open_projections
    from projections.rebuild import rebuild
    from projections.search_index import SEARCH
    from store import SQLiteStore
    from store.sqlite_engine import sqlite3

    written = fill(tmp_path / "log.db", 3000)
    store = SQLiteStore(tmp_path / "log.db")
    try:
        with open_projections(store, tmp_path / "p.db") as db:
            rebuild(db, SEARCH)
    finally:
        store.close()
    conn = sqlite3.connect(tmp_path / "p.db")
    try:
        (index,) = conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'search_text_g%'"
        ).fetchone()
    finally:
        conn.close()
    assert 0 < index <= 0.3 * written["body_bytes"]


def test_search_rebuild_leaves_the_index_merging_as_catch_up_needs(log, pdb):  # noqa: F811
    from projections.db import read_meta
    from projections.search_index import AUTOMERGE, SEARCH

    log.append_many(_hand_fixture())
    ProjectionRunner(pdb).rebuild("search")  # its bulk load turns automerge off
    with pdb.read() as conn:
        text = SEARCH.tables(read_meta(conn, "search").generation).text
        config = dict(conn.execute(f"SELECT k, v FROM {text}_config").fetchall())
    assert config.get("automerge", AUTOMERGE) == AUTOMERGE
    log.append_many([other_event("o3", "file.created", "2024-01-02T00:00:00.000Z")])
    ProjectionRunner(pdb).catch_up()
    assert [e["id"] for e in search_events(pdb, "o3")] == ["o3"]


LATER = "2030-01-01T00:00:00.000Z"


def test_stats_kept_answer_is_dropped_when_events_arrive(filled, log):  # noqa: F811
    # Long after: the cut-off's bucket holds nothing, so the answer is kept.
    before = stats(filled, bucket="1d", now=LATER)
    assert stats(filled, bucket="1d", now=LATER) == before  # the kept answer, same thread
    log.append_many([other_event("o3", "file.created", "2024-01-01T00:07:00.000Z")])
    writer = open_projections(log, filled.path)  # another connection, as a catch-up child's
    try:
        ProjectionRunner(writer).catch_up()
    finally:
        writer.close()
    after = stats(filled, bucket="1d", now=LATER)
    assert after["events_by_type"]["file.created"] == before["events_by_type"]["file.created"] + 1


def test_stats_split_follows_the_cutoff_within_its_bucket(filled):
    # Cut-offs 00:45:30 and 00:46:30, one bucket (00:45): r6 (00:46) is stuck at the second only.
    early = stats(filled, bucket="1d", now="2024-01-01T01:00:30.000Z")
    late = stats(filled, bucket="1d", now="2024-01-01T01:01:30.000Z")
    assert late["transformations"]["stuck"] == early["transformations"]["stuck"] + 1
