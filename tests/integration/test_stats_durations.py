"""`stats`' accepted→ready percentiles from the duration histogram: within 1 % of exact."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from projections import ProjectionRunner, open_projections, stats
from projections.stats_queries import bin_value
from store import SQLiteStore
from tests.projections_helpers import video_event

START = datetime(2024, 1, 1, 23, 58, 30, tzinfo=UTC)  # near an hour's and a day's end
NOW = "2030-01-01T00:00:00Z"  # long after: nothing accepted in range is running


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def nearest_rank(values: list[int], p: int) -> int:
    """The exact nearest-rank percentile: the value at rank ceil(p/100 · n), ascending."""
    ordered = sorted(values)
    rank = max(1, -(-p * len(ordered) // 100))
    return ordered[rank - 1]


def within_one_percent(got: int, exact: int) -> bool:
    return abs(got - exact) <= 0.01 * abs(exact)


durations = st.lists(
    st.one_of(
        st.sampled_from([0, 1, 999, 1000, 1017, 1018, 1019, 60_000]),
        st.integers(0, 5_000),
        st.integers(0, 40 * 86_400_000),  # up to 40 days
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ms=durations, offsets=st.lists(st.integers(0, 3 * 86_400), max_size=40))
@example(ms=[0], offsets=[])
@example(ms=[1, 0, 1], offsets=[])
@example(ms=[40 * 86_400_000, 0, 1], offsets=[0, 90, 3600])
def test_percentiles_are_within_one_percent_of_exact_nearest_rank(ms, offsets):
    """Every percentile, overall, per kind and per bucket, by every bucket size."""
    events, ready_at = [], {}
    for i, duration in enumerate(ms):
        accepted = START + timedelta(seconds=offsets[i] if i < len(offsets) else 0)
        ready = accepted + timedelta(milliseconds=duration)
        ready_at[i] = _at(ready)
        events.append(video_event(f"a{i}", "accepted", _at(accepted), request_id=f"r{i}"))
        events.append(video_event(f"b{i}", "ready", _at(ready), request_id=f"r{i}"))
    with caught_up(events) as views:
        for bucket, width in (("1d", 10), ("1h", 13), ("5m", None)):
            got = stats(views, bucket=bucket, now=NOW)
            overall = got["accepted_to_ready_ms"]
            assert overall["count"] == len(ms)
            assert got["accepted_to_ready_ms_by_kind"] == {"video-transformation": overall}
            for p in (50, 95, 99):
                assert within_one_percent(overall[f"p{p}"], nearest_rank(ms, p)), (bucket, p)
            for row in got["buckets"]:
                if width is None:  # a 5-minute bucket: the ready ones that end in it
                    inside = [d for i, d in enumerate(ms) if _floor_5m(ready_at[i]) == row["start"]]
                else:
                    inside = [
                        d for i, d in enumerate(ms) if ready_at[i][:width] == row["start"][:width]
                    ]
                assert row["ready"] == len(inside)
                for p in (50, 95):
                    if not inside:  # a bucket of accepted events only
                        assert row[f"p{p}_ms"] is None
                    else:
                        exact = nearest_rank(inside, p)
                        assert within_one_percent(row[f"p{p}_ms"], exact)


@contextmanager
def caught_up(events: list) -> Iterator:
    """The read models of a new log holding `events`, caught up."""
    with tempfile.TemporaryDirectory() as tmp:
        log = SQLiteStore(os.path.join(tmp, "log.db"))
        views = open_projections(log, os.path.join(tmp, "log.projections.db"))
        try:
            log.append_many(events)
            ProjectionRunner(views).catch_up()
            yield views
        finally:
            views.close()
            log.close()


def _floor_5m(moment: str) -> str:
    return f"{moment[:14]}{int(moment[14:16]) // 5 * 5:02d}:00.000Z"


@pytest.mark.parametrize("ms", [0, 1, 999])
def test_durations_under_a_second_are_exact(ms):
    assert bin_value(ms) == ms


def test_a_range_counts_the_durations_of_its_edges_by_the_latest_event():
    """5-minute tiles read the ready transformations: one ending exactly at `since` is in,
    one ending exactly at `until` is out (ranges are [since, until))."""
    since = datetime(2024, 1, 1, 10, 5, tzinfo=UTC)
    until = since + timedelta(minutes=10)
    ends = {  # request id: (latest event, accepted→ready ms)
        "at-since": (since, 1_000),
        "inside": (since + timedelta(minutes=5) - timedelta(milliseconds=1), 2_000),
        "before": (since - timedelta(milliseconds=1), 4_000),
        "at-until": (until, 8_000),
    }
    events = []
    for rid, (ready, ms) in ends.items():
        accepted = _at(ready - timedelta(milliseconds=ms))
        events.append(video_event(f"a-{rid}", "accepted", accepted, request_id=rid))
        events.append(video_event(f"r-{rid}", "ready", _at(ready), request_id=rid))
    with caught_up(events) as views:
        for bucket in ("5m", "1h"):
            got = stats(views, _at(since), _at(until), bucket=bucket, now=NOW)
            assert got["accepted_to_ready_ms"]["count"] == 2, bucket
            assert got["accepted_to_ready_ms"]["p50"] == bin_value(1000)  # rank 1 of 2: 1 s
            assert got["transformations"]["ready"] == 2, bucket
