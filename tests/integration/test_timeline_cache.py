"""The timeline cache: same answers as no cache, never stale after the checkpoint moves,
a rebuild, or the time that makes a transformation stuck."""

import orjson
import pytest

from projections import (
    AssetNotFound,
    ProjectionDB,
    ProjectionRunner,
    TimelineCache,
    timeline,
    timeline_json,
)
from store import SQLiteStore
from tests.projections_helpers import SAMPLE, copy_keeping_identity, log, pdb, runner, video_event

__all__ = ["log", "pdb", "runner"]  # fixtures

OTHER = "https://ik.imagekit.io/demo/other.mp4"
NOW = "2024-01-01T00:10:00.000Z"  # a stuck cutoff


@pytest.fixture
def cache():
    return TimelineCache()


def _cached(pdb, cache, url=SAMPLE, now=None) -> dict:
    answer = orjson.loads(timeline_json(pdb, url, cache=cache, now=now))
    assert answer == timeline(pdb, url, now=now)  # the cache never changes an answer
    return answer


def test_cached_timeline_takes_in_new_events_of_the_asset(log, pdb, runner, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    runner.catch_up()
    first = _cached(pdb, cache)
    assert _cached(pdb, cache) == first  # served from the cache
    log.append(video_event("r1", "ready", "2024-01-01T00:00:02.000Z"))
    runner.catch_up()
    (t,) = _cached(pdb, cache)["transformations"]
    assert (t["status"], t["event_count"], t["accepted_to_ready_ms"]) == ("ready", 2, 1000)


def test_cached_timeline_position_follows_other_assets_events(log, pdb, runner, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    runner.catch_up()
    assert _cached(pdb, cache)["position"] == 1
    log.append(video_event("o1", "accepted", "2024-01-01T00:00:02.000Z", asset=OTHER))
    runner.catch_up()
    answer = _cached(pdb, cache)
    assert (answer["position"], len(answer["transformations"])) == (2, 1)


def test_cached_timeline_misses_after_a_rebuild(log, pdb, runner, cache, tmp_path):
    copy_keeping_identity(log, tmp_path / "restored.db")  # empty, as the log is now
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    runner.catch_up()
    before = _cached(pdb, cache)
    runner.rebuild()
    assert _cached(pdb, cache) == before
    # The read models are rebuilt from another log (a restored backup, say): a new
    # generation whose asset has the same event count, so only the generation tells.
    # (a copy of the log, so the same identity, with another history since)
    restored = SQLiteStore(tmp_path / "restored.db")
    restored.append(video_event("e1", "error", "2024-01-01T00:00:03.000Z"))
    try:
        with ProjectionDB(restored, pdb.path) as views:
            ProjectionRunner(views).catch_up()  # sees another log: rebuilds
            (t,) = _cached(views, cache)["transformations"]
            assert (t["status"], t["event_count"]) == ("error", 1)
    finally:
        restored.close()


def test_cached_timeline_flags_stuck_when_time_passes(log, pdb, runner, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:00.000Z"))
    log.append(video_event("a2", "accepted", "2024-01-01T00:10:00.000Z", request_id="req-2"))
    runner.catch_up()
    # stuck after 15 minutes: neither, then the first, then both, then none again.
    for now, expected in [
        ("2024-01-01T00:05:00Z", [False, False]),
        ("2024-01-01T00:15:00.001Z", [True, False]),
        ("2024-01-01T00:30:00Z", [True, True]),
        ("2024-01-01T00:14:00Z", [False, False]),
    ]:
        answer = _cached(pdb, cache, now=now)
        assert [t["stuck"] for t in answer["transformations"]] == expected, now


def test_cache_hits_while_no_stuck_flag_changes(log, pdb, runner, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:00.000Z"))
    log.append(video_event("r2", "ready", "2024-01-01T00:02:00.000Z", request_id="req-2"))
    runner.catch_up()
    nows = ["2024-01-01T00:05:00Z", "2024-01-01T00:14:59Z", "2024-01-01T00:15:00Z"]
    for now in nows:  # a1 is not stuck yet at any of them: one read, then hits
        timeline_json(pdb, SAMPLE, cache=cache, now=now)
    assert (cache.misses, cache.hits) == (1, 2)
    timeline_json(pdb, SAMPLE, cache=cache, now="2024-01-01T00:15:00.001Z")  # a1 is stuck
    timeline_json(pdb, SAMPLE, cache=cache, now="2024-01-02T00:00:00Z")  # still stuck
    assert (cache.misses, cache.hits) == (2, 3)


def test_cached_timeline_of_unknown_asset_is_not_found(log, pdb, runner, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    runner.catch_up()
    with pytest.raises(AssetNotFound):
        timeline_json(pdb, OTHER, cache=cache)


def test_as_of_answers_bypass_the_cache(log, pdb, runner, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    log.append(video_event("r1", "ready", "2024-01-01T00:00:02.000Z"))
    runner.catch_up()
    assert _cached(pdb, cache)["transformations"][0]["status"] == "ready"
    past = orjson.loads(timeline_json(pdb, SAMPLE, as_of=1, cache=cache))
    assert (past["position"], past["transformations"][0]["status"]) == (1, "accepted")


@pytest.mark.parametrize("max_bytes", [0, 150, 10_000])
def test_cache_stays_within_its_byte_budget(max_bytes):
    cache = TimelineCache(max_bytes=max_bytes)
    for i in range(20):
        cache.put(1, f"asset{i}", 1, "u", b"x" * 99)
    kept = [i for i in range(20) if cache.get(1, f"asset{i}", 1, NOW) is not None]
    assert len(kept) * 100 <= max_bytes
    assert kept == list(range(20 - len(kept), 20))  # the most recent are kept
    if kept:
        assert cache.get(1, f"asset{kept[-1]}", 2, NOW) is None  # another stamp misses
        assert cache.get(2, f"asset{kept[-1]}", 1, NOW) is None  # another generation misses


@pytest.mark.parametrize(
    ("accepted", "ready", "ms"),
    [
        ("2024-01-01T00:00:01.000Z", "2024-01-01T00:00:01.001Z", 1),
        ("2024-12-31T23:59:59.999Z", "2025-01-01T00:00:00.000Z", 1),
        ("2024-02-28T00:00:00.000Z", "2024-03-01T00:00:00.123Z", 2 * 86_400_000 + 123),
        ("2024-01-01T00:00:02.000Z", "2024-01-01T00:00:01.500Z", -500),
    ],
)
def test_accepted_to_ready_ms_is_exact(log, pdb, runner, accepted, ready, ms):
    log.append(video_event("a1", "accepted", accepted))
    log.append(video_event("r1", "ready", ready))
    runner.catch_up()
    (t,) = timeline(pdb, SAMPLE)["transformations"]
    assert t["accepted_to_ready_ms"] == ms


def test_strings_survive_the_json_encoding_whole(log, pdb, runner):
    odd = 'q"uote \\ back\nline\ttab \x01 é 😀 </script>'
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z", request_id=odd))
    runner.catch_up()
    (t,) = timeline(pdb, SAMPLE)["transformations"]
    assert t["request_id"] == odd
    assert t["events"][0]["id"] == "a1"
