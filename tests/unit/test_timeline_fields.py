"""Each group of a transformation's fields comes from the one event it describes.

`ready_at` goes with the output, metadata and timings of the latest `ready` (by
created_at, then log position), `error_at` with the reason of the latest `error`,
`accepted_at` is the earliest `accepted`; the status is the latest terminal event's.
Every case runs through every way events reach the tables (catch-up one event per
batch and all in one, both rebuild paths, the `as_of` refold) and every arrival
order, which must all agree.
"""

import dataclasses
import itertools

import orjson
import pytest

from projections import ProjectionDB, timeline
from projections.catchup import catch_up
from projections.checkpoints import ensure
from projections.rebuild import rebuild
from projections.video_timeline import TIMELINE
from store import NewEvent, SQLiteStore
from tests.projections_helpers import SAMPLE, ContractOnly, video_event

PATHS = [
    "catch_up_each",
    "catch_up_once",
    "rebuild_sql",
    "rebuild_staging",
    "rebuild_batches",
    "as_of",
]


def ready(event_id: str, at: str, quality: int, encoding_ms: int) -> NewEvent:
    """A ready event whose output URL, metadata and timings all say which one it is."""
    event = video_event(event_id, "ready", at, quality=quality)
    doc = orjson.loads(event.body)
    doc["timings"]["encoding_duration"] = encoding_ms
    doc["data"]["transformation"]["output"]["video_metadata"]["bitrate"] = encoding_ms
    return event._replace(body=orjson.dumps(doc))


def error(event_id: str, at: str, reason: str) -> NewEvent:
    return video_event(event_id, "error", at, reason=reason)


def accepted(event_id: str, at: str, quality: int = 10) -> NewEvent:
    return video_event(event_id, "accepted", at, quality=quality)


def fold(tmp_path, events, path: str) -> dict:
    """The sample asset's only transformation after `events` arrive in this order by `path`."""
    log = SQLiteStore(tmp_path / "log.db")
    # The staging path: the same SQL over a local copy, for a store without sqlite_source.
    source = ContractOnly(log, sqlite_source=False) if path == "rebuild_staging" else log
    db = ProjectionDB(source, tmp_path / "log.projections.db")
    try:
        log.append_many(events)
        if path in ("rebuild_sql", "rebuild_staging"):
            rebuild(db, TIMELINE)
        elif path == "rebuild_batches":  # the generic path: load + finish, no SQL bulk copy
            rebuild(db, dataclasses.replace(TIMELINE, bulk_extract=None, bulk_sql=None))
        else:
            ensure(db, TIMELINE)
            catch_up(db, TIMELINE, batch_size=1 if path == "catch_up_each" else 1000)
        as_of = log.last_position() if path == "as_of" else None
        (item,) = timeline(db, SAMPLE, as_of=as_of)["transformations"]
        return item
    finally:
        db.close()
        log.close()


def arrivals(*events):
    """Every arrival order of these events (the log's position order is arrival order)."""
    return [list(order) for order in itertools.permutations(events)]


def fields(item: dict, *names: str) -> tuple:
    return tuple(item[name] for name in names)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "events",
    arrivals(
        error("e1", "2024-01-01T00:00:10.000Z", "encoding_failed"),
        error("e2", "2024-01-01T00:00:20.000Z", "download_failed"),
    ),
)
def test_two_errors_show_the_time_and_reason_of_the_latest(tmp_path, path, events):
    item = fold(tmp_path, events, path)
    assert fields(item, "status", "error_at", "error_reason") == (
        "error",
        "2024-01-01T00:00:20.000Z",
        "download_failed",
    )


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "events",
    arrivals(
        accepted("a1", "2024-01-01T00:00:05.000Z"),
        accepted("a2", "2024-01-01T00:00:01.000Z"),
        ready("r1", "2024-01-01T00:00:10.000Z", quality=1, encoding_ms=111),
        ready("r2", "2024-01-01T00:00:20.000Z", quality=2, encoding_ms=222),
    ),
)
def test_two_readies_show_the_time_output_metadata_and_timings_of_the_latest(
    tmp_path, path, events
):
    item = fold(tmp_path, events, path)
    assert fields(item, "status", "accepted_at", "ready_at", "output_url") == (
        "ready",
        "2024-01-01T00:00:01.000Z",
        "2024-01-01T00:00:20.000Z",
        f"{SAMPLE}?tr=f-webm,q-2",
    )
    assert item["timings"]["encoding_duration"] == 222
    assert item["video_metadata"]["bitrate"] == 222
    assert item["accepted_to_ready_ms"] == 19_000  # earliest accepted → latest ready


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "events",
    arrivals(
        accepted("a1", "2024-01-01T00:00:00.000Z"),
        ready("r1", "2024-01-01T00:00:10.000Z", quality=1, encoding_ms=111),
        error("e1", "2024-01-01T00:00:20.000Z", "download_failed"),
    ),
)
def test_ready_then_a_later_error_is_an_error_that_keeps_the_ready(tmp_path, path, events):
    item = fold(tmp_path, events, path)
    assert fields(item, "status", "ready_at", "output_url", "error_at", "error_reason") == (
        "error",
        "2024-01-01T00:00:10.000Z",
        f"{SAMPLE}?tr=f-webm,q-1",
        "2024-01-01T00:00:20.000Z",
        "download_failed",
    )


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "events",
    arrivals(
        error("e1", "2024-01-01T00:00:10.000Z", "encoding_failed"),
        ready("r1", "2024-01-01T00:00:20.000Z", quality=1, encoding_ms=111),
    ),
)
def test_error_then_a_later_ready_is_ready(tmp_path, path, events):
    item = fold(tmp_path, events, path)
    assert fields(item, "status", "ready_at", "error_at", "error_reason") == (
        "ready",
        "2024-01-01T00:00:20.000Z",
        "2024-01-01T00:00:10.000Z",
        "encoding_failed",
    )


SAME = "2024-01-01T00:00:10.000Z"


@pytest.mark.parametrize("path", PATHS)
def test_equal_created_at_is_broken_by_log_position(tmp_path, path):
    # Same created_at everywhere: the event later in the log is the latest.
    events = [
        error("e1", SAME, "encoding_failed"),
        ready("r1", SAME, quality=1, encoding_ms=111),
        ready("r2", SAME, quality=2, encoding_ms=222),
        error("e2", SAME, "download_failed"),
    ]
    item = fold(tmp_path, events, path)
    assert fields(item, "status", "error_reason", "output_url") == (
        "error",
        "download_failed",
        f"{SAMPLE}?tr=f-webm,q-2",
    )
    assert item["timings"]["encoding_duration"] == 222
    (tmp_path / "other_order").mkdir()
    item = fold(tmp_path / "other_order", [events[i] for i in (3, 0, 2, 1)], path)
    assert fields(item, "status", "error_reason", "output_url") == (
        "ready",
        "encoding_failed",
        f"{SAMPLE}?tr=f-webm,q-1",
    )


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("events", "attempts"),
    [
        ([accepted("a1", SAME)], 0),
        ([accepted("a1", SAME), error("e1", SAME, "encoding_failed")], 1),
        (
            [
                error("e1", "2024-01-01T00:00:11.000Z", "encoding_failed"),
                accepted("a1", SAME),
                ready("r1", "2024-01-01T00:00:12.000Z", quality=1, encoding_ms=1),
                error("e2", "2024-01-01T00:00:13.000Z", "download_failed"),
            ],
            3,
        ),
    ],
)
def test_attempts_count_the_terminal_events(tmp_path, path, events, attempts):
    item = fold(tmp_path, events, path)
    assert item["attempts"] == attempts
    assert item["event_count"] == len(events)


EARLY_ERROR = video_event("e1", "error", "2024-01-01T00:00:10.000Z", quality=2)
LATE_READY = ready("r1", "2024-01-01T00:00:20.000Z", quality=1, encoding_ms=1)
LATER_ACCEPTED = accepted("a1", "2024-01-01T00:00:30.000Z", quality=3)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("events", "quality"),
    [(order, 2) for order in arrivals(EARLY_ERROR, LATE_READY)]
    + [(order, 3) for order in arrivals(EARLY_ERROR, LATE_READY, LATER_ACCEPTED)],
)
def test_request_fields_come_from_the_earliest_accepted_else_the_earliest_event(
    tmp_path, path, events, quality
):
    item = fold(tmp_path, events, path)
    assert item["options"]["quality"] == quality
    assert item["request_url"] == f"{SAMPLE}?tr=f-webm,q-{quality}"
