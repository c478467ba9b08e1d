"""The timeline fold and its queries, on the documented payloads and edge cases."""

import pytest

from projections import (
    AssetNotFound,
    InvalidQuery,
    asset_positions,
    assets,
    default_projections_path,
    timeline,
    transformations,
)
from tests.projections_helpers import (
    SAMPLE,
    documented_events,
    log,
    other_event,
    pdb,
    runner,
    video_event,
)

__all__ = ["log", "pdb", "runner"]  # fixtures


def test_default_projections_path_sits_beside_the_log():
    assert default_projections_path("/data/ikledger.db") == "/data/ikledger.projections.db"


def test_documented_payloads_give_accepted_then_ready_and_download_failed(log, pdb, runner):
    log.append_many(documented_events())
    runner.catch_up()
    result = timeline(pdb, SAMPLE)
    assert result["asset"] == SAMPLE
    assert result["position"] == 3
    ready, failed = result["transformations"]
    assert ready["status"] == "ready"
    assert ready["accepted_at"] == "2022-06-20T11:59:58.461Z"
    assert ready["ready_at"] == "2022-06-20T12:00:11.703Z"
    assert ready["accepted_to_ready_ms"] == 13242
    assert ready["timings"] == {"download_duration": 2713, "encoding_duration": 10175}
    assert ready["video_metadata"]["duration"] == 15.023
    assert ready["kind"] == "video-transformation"
    assert ready["options"]["format"] == "webm"
    assert [e["type"] for e in ready["events"]] == [
        "video.transformation.accepted",
        "video.transformation.ready",
    ]
    assert failed["status"] == "error"
    assert failed["error_reason"] == "download_failed"
    assert failed["accepted_at"] is None


def test_https_form_of_the_url_is_the_same_asset(log, pdb, runner):
    log.append_many(documented_events())
    runner.catch_up()
    https = timeline(pdb, SAMPLE.replace("http://", "https://"))
    assert https["transformations"] == timeline(pdb, SAMPLE)["transformations"]
    assert asset_positions(pdb, SAMPLE.replace("http://", "https://")) == [1, 2, 3]


def test_unknown_asset_raises_asset_not_found(log, pdb, runner):
    runner.catch_up()
    with pytest.raises(AssetNotFound):
        timeline(pdb, "http://nowhere/x.mp4")
    with pytest.raises(AssetNotFound):
        asset_positions(pdb, "http://nowhere/x.mp4")


def test_ready_before_accepted_orders_by_created_at_not_arrival(log, pdb, runner):
    log.append_many(
        [
            video_event("r", "ready", "2024-01-01T00:00:10.000Z"),
            video_event("a", "accepted", "2024-01-01T00:00:01.000Z"),
        ]
    )
    runner.catch_up()
    (t,) = timeline(pdb, SAMPLE)["transformations"]
    assert t["status"] == "ready"
    assert [e["id"] for e in t["events"]] == ["a", "r"]
    assert t["accepted_to_ready_ms"] == 9000


def test_latest_terminal_event_decides_the_status(log, pdb, runner):
    log.append_many(
        [
            video_event("e", "error", "2024-01-01T00:00:20.000Z"),
            video_event("r", "ready", "2024-01-01T00:00:10.000Z"),
            video_event("a", "accepted", "2024-01-01T00:00:01.000Z"),
        ]
    )
    runner.catch_up()
    (t,) = timeline(pdb, SAMPLE)["transformations"]
    assert (t["status"], t["error_reason"], t["ready_at"]) == (
        "error",
        "encoding_failed",
        "2024-01-01T00:00:10.000Z",
    )


def test_ready_without_accepted_and_missing_request_id(log, pdb, runner):
    log.append_many(
        [
            video_event("r1", "ready", "2024-01-01T00:00:10.000Z"),
            video_event("x1", "accepted", "2024-01-01T00:00:11.000Z", request_id=None),
            video_event("x2", "accepted", "2024-01-01T00:00:12.000Z", request_id=None),
            other_event("f1", "file.created", "2024-01-01T00:00:13.000Z"),
        ]
    )
    runner.catch_up()
    result = timeline(pdb, SAMPLE)
    assert result["position"] == 4
    ready, own1, own2 = result["transformations"]
    assert ready["accepted_at"] is None and ready["accepted_to_ready_ms"] is None
    assert [own1["request_id"], own2["request_id"]] == [None, None]
    assert [len(own1["events"]), len(own2["events"])] == [1, 1]


def test_redelivery_under_a_new_id_is_folded_into_the_same_transformation(log, pdb, runner):
    log.append_many(
        [
            video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"),
            video_event("a2", "accepted", "2024-01-01T00:00:01.000Z"),
            video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"),  # same id: the log dedupes
        ]
    )
    runner.catch_up()
    (t,) = timeline(pdb, SAMPLE)["transformations"]
    assert [e["id"] for e in t["events"]] == ["a1", "a2"]
    assert t["status"] == "accepted"


def _stuck_log(log):
    log.append_many(
        [
            video_event("a1", "accepted", "2024-01-01T00:00:00.000Z", request_id="old"),
            video_event("a2", "accepted", "2024-01-01T00:20:00.000Z", request_id="new"),
            video_event(
                "e1", "error", "2024-01-01T00:21:00.000Z", request_id="bad", asset="http://h/b.mp4"
            ),
        ]
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [("stuck", ["old"]), ("accepted", ["new"]), ("error", ["bad"]), (None, ["bad", "new", "old"])],
)
def test_transformations_by_status_with_injected_now(log, pdb, runner, status, expected):
    _stuck_log(log)
    runner.catch_up()
    found = transformations(pdb, status=status, now="2024-01-01T00:25:00Z")
    assert [t["request_id"] for t in found["transformations"]] == expected


def test_stuck_threshold_is_configurable(log, pdb, runner):
    _stuck_log(log)
    runner.catch_up()
    found = transformations(pdb, status="stuck", now="2024-01-01T00:25:00Z", stuck_after=60)
    assert {t["request_id"] for t in found["transformations"]} == {"old", "new"}


def test_assets_counts_and_status_filter(log, pdb, runner):
    _stuck_log(log)
    runner.catch_up()
    page = assets(pdb, now="2024-01-01T00:25:00Z")
    assert [a["asset"] for a in page["assets"]] == ["http://h/b.mp4", SAMPLE]
    assert page["assets"][1]["counts"] == {"accepted": 1, "stuck": 1, "ready": 0, "error": 0}
    stuck = assets(pdb, status="stuck", now="2024-01-01T00:25:00Z")["assets"]
    assert [a["asset"] for a in stuck] == [SAMPLE]
    assert assets(pdb, status="stuck", now="2024-01-01T00:10:00Z")["assets"] == []
    assert [a["asset"] for a in assets(pdb, since="2024-01-01T00:20:30Z")["assets"]] == [
        "http://h/b.mp4"
    ]


def test_transformations_by_reason(log, pdb, runner):
    log.append_many(documented_events())
    runner.catch_up()
    found = transformations(pdb, reason="download_failed")["transformations"]
    assert [t["request_id"] for t in found] == ["f005b939-7ca3-4310-9e1e-009239b3616b"]
    assert transformations(pdb, reason="encoding_failed")["transformations"] == []


def test_keyset_pagination_visits_every_asset_once(log, pdb, runner):
    log.append_many(
        [
            video_event(
                f"a{i}", "accepted", f"2024-01-01T00:00:{i % 3:02d}.000Z", asset=f"http://h/{i}"
            )
            for i in range(7)
        ]
    )
    runner.catch_up()
    seen, cursor = [], None
    while True:
        page = assets(pdb, limit=3, cursor=cursor)
        seen += [a["asset"] for a in page["assets"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"http://h/{i}" for i in range(7))
    assert len(seen) == 7
    seen, cursor = [], None
    while True:
        page = transformations(pdb, limit=2, cursor=cursor)
        seen += [t["request_id"] for t in page["transformations"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert len(seen) == 7


@pytest.mark.parametrize(
    "kwargs", [{"status": "done"}, {"cursor": "!!"}, {"limit": 0}, {"since": "yesterday"}]
)
def test_bad_query_arguments_raise_invalid_query(pdb, kwargs):
    with pytest.raises(InvalidQuery):
        assets(pdb, **kwargs)


def test_only_a_body_sqlite_cannot_read_is_malformed_not_any_sql_error():
    """Poison is decided by looking at the bodies (json_valid), never by an error's text."""
    from projections.video_timeline import MalformedBody, _run
    from store.sqlite_engine import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE src (position INTEGER PRIMARY KEY, body BLOB)")
    conn.executemany("INSERT INTO src VALUES (?, ?)", [(1, b'{"a": 1}'), (2, b'{"a": 2}')])
    window = {"after": 0, "until": 2}
    # A whole statement, as the extraction's CREATE TABLE … AS is (a SELECT steps one row).
    reads = "SELECT count(json_extract(CAST(body AS TEXT), '$.a')) FROM src"
    _run(conn, reads, window, "src")  # valid bodies: nothing raised
    with pytest.raises(sqlite3.OperationalError, match="no such column") as failed:
        _run(conn, "SELECT missing FROM src", window, "src")
    assert not isinstance(failed.value, MalformedBody)
    conn.execute("INSERT INTO src VALUES (3, ?)", (b"{not json",))
    with pytest.raises(MalformedBody, match="position 3"):
        _run(conn, reads, {"after": 0, "until": 3}, "src")
