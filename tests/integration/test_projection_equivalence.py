"""Property: rebuild and incremental catch-up give identical tables, whatever the stream."""

import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections import ProjectionDB, search_events, stats, timeline
from projections.catchup import catch_up
from projections.checkpoints import ensure
from projections.rebuild import rebuild
from projections.runner import OVERVIEW_PROJECTIONS
from projections.video_timeline import TIMELINE
from store import SQLiteStore
from tests.projections_helpers import REBUILD_PATHS, other_event, table_rows, through, video_event

ASSETS = ["http://h/a.mp4", "https://h/a.mp4", "http://h/b.mp4"]
# Few, so ties are common; on each side of a 5-minute, an hour's and a day's boundary,
# so a transformation's latest event moves it between buckets at every grain.
TIMES = [
    "2023-12-31T23:59:59.000Z",
    "2024-01-01T00:00:00.000Z",
    "2024-01-01T00:05:00.000Z",
    "2024-01-01T01:00:00.000Z",
]
GRAIN_START = {"1h": 13, "1d": 10}  # the characters of a bucket that name its hour, day


def assert_rolled_up(rows: list[tuple]) -> None:
    """Rows (grain, bucket, *key, n): the hour and day rows are the 5-minute rows summed."""
    assert {row[0] for row in rows} == ({"5m", "1h", "1d"} if rows else set())
    five = [row for row in rows if row[0] == "5m"]
    for grain, width in GRAIN_START.items():
        summed: dict[tuple, int] = {}
        for _, bucket, *key, n in five:
            start = bucket[:width] + "T00:00:00.000Z"[width - 10 :]
            summed[(start, *key)] = summed.get((start, *key), 0) + n
        assert {tuple(row[1:-1]): row[-1] for row in rows if row[0] == grain} == summed


video = st.builds(
    lambda kind, asset, rid, at, reason, quality, fmt, ttype: (
        "video",
        kind,
        asset,
        rid,
        at,
        reason,
        quality,
        fmt,
        ttype,
    ),
    st.sampled_from(["accepted", "ready", "error"]),
    st.sampled_from(ASSETS),
    st.sampled_from(["r1", "r2", "r3", None]),
    st.sampled_from(TIMES),
    st.sampled_from(["encoding_failed", "download_failed"]),
    st.integers(0, 2),
    # The counts are kept per kind, output format and reason: several of each, and none.
    st.sampled_from(["webm", "mp4", None]),
    st.sampled_from(["video-transformation", "gif-to-video", None]),
)
other = st.builds(
    lambda kind, at: ("other", kind, at),
    st.sampled_from(["file.created", "upload.pre-transform.success", "brand.new.type"]),
    st.sampled_from(TIMES),
)
streams = st.lists(st.one_of(video, video, other), max_size=25)


def _events(spec, duplicates):
    built = []
    for i, item in enumerate(spec):
        if item[0] == "video":
            _, kind, asset, rid, at, reason, quality, fmt, ttype = item
            built.append(
                video_event(
                    f"e{i}",
                    kind,
                    at,
                    asset=asset,
                    request_id=rid,
                    reason=reason,
                    quality=quality,
                    fmt=fmt,
                    ttype=ttype,
                )
            )
        else:
            built.append(other_event(f"e{i}", item[1], item[2]))
    # Redeliveries of the same id: the log keeps the first, the projections see one event.
    return built + [built[i % len(built)] for i in duplicates] if built else built


@pytest.mark.parametrize("path", REBUILD_PATHS)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    spec=streams,
    duplicates=st.lists(st.integers(0, 30), max_size=4),
    cuts=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    batch_size=st.integers(1, 5),
    chunk=st.integers(1, 30),
)
def test_rebuild_equals_incremental_catch_up(path, spec, duplicates, cuts, batch_size, chunk):
    events = _events(spec, duplicates)
    with tempfile.TemporaryDirectory() as tmp:
        log = SQLiteStore(os.path.join(tmp, "log.db"))
        incremental = ProjectionDB(log, os.path.join(tmp, "inc.projections.db"))
        rebuilt = ProjectionDB(through(log, path), os.path.join(tmp, "full.projections.db"))
        try:
            ensure(incremental, TIMELINE)
            start, i = 0, 0
            while start < len(events):
                size = cuts[i % len(cuts)]
                log.append_many(events[start : start + size])
                catch_up(incremental, TIMELINE, batch_size=batch_size)
                start, i = start + size, i + 1
            rebuild(rebuilt, TIMELINE, chunk=chunk)
            assert table_rows(incremental.path) == table_rows(rebuilt.path)
            for table in ("counts", "durations"):
                assert_rolled_up(table_rows(incremental.path)[table])
            for asset in {a.replace("https:", "http:") for a in ASSETS}:
                try:
                    served = timeline(incremental, asset)
                except Exception as exc:  # noqa: BLE001 - both must fail alike
                    served = type(exc)
                try:
                    replayed = timeline(rebuilt, asset, as_of=log.last_position())
                except Exception as exc:  # noqa: BLE001
                    replayed = type(exc)
                assert served == replayed
        finally:
            incremental.close()
            rebuilt.close()
            log.close()


@pytest.mark.parametrize("path", REBUILD_PATHS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=streams,
    cuts=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    batch_size=st.integers(1, 5),
    chunk=st.integers(1, 30),
)
def test_overview_models_rebuild_equals_catch_up(path, spec, cuts, batch_size, chunk):
    """The event-type counts and the search listing are equal, and search answers alike."""
    events = _events(spec, [])
    with tempfile.TemporaryDirectory() as tmp:
        log = SQLiteStore(os.path.join(tmp, "log.db"))
        incremental = ProjectionDB(log, os.path.join(tmp, "inc.projections.db"))
        rebuilt = ProjectionDB(through(log, path), os.path.join(tmp, "full.projections.db"))
        try:
            for projection in OVERVIEW_PROJECTIONS:
                ensure(incremental, projection)
            start, i = 0, 0
            while start < len(events):
                size = cuts[i % len(cuts)]
                log.append_many(events[start : start + size])
                for projection in OVERVIEW_PROJECTIONS:
                    catch_up(incremental, projection, batch_size=batch_size)
                start, i = start + size, i + 1
            for projection in OVERVIEW_PROJECTIONS:
                rebuild(rebuilt, projection, chunk=chunk)
                name = projection.name
                assert table_rows(incremental.path, name) == table_rows(rebuilt.path, name)
            assert_rolled_up(table_rows(incremental.path, "event_types")["counts"])
            for q in ("encoding", "webm", "h", "download failed", None):
                assert search_events(incremental, q, limit=100) == search_events(
                    rebuilt, q, limit=100
                )
            assert stats(incremental, now=TIMES[-1]) == stats(rebuilt, now=TIMES[-1])
        finally:
            incremental.close()
            rebuilt.close()
            log.close()
