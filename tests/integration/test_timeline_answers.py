"""Whole `GET /timeline` answers kept per reader thread: served again only while nothing
was committed to the read models and no `stuck` flag would change.

The writer here is another connection (another `ProjectionDB` on the same file), as in
`serve`, where the read models' catch-up runs in its own thread with its own connection.
"""

import threading

import orjson
import pytest

from projections import ProjectionDB, ProjectionRunner, TimelineCache, timeline, timeline_json
from store import SQLiteStore
from tests.projections_helpers import SAMPLE, copy_keeping_identity, log, pdb, runner, video_event

__all__ = ["log", "pdb", "runner"]  # fixtures

OTHER = "https://ik.imagekit.io/demo/other.mp4"


@pytest.fixture
def cache():
    return TimelineCache()


@pytest.fixture
def writer(log, pdb):
    """The read models' catch-up through a connection of its own."""
    views = ProjectionDB(log, pdb.path)
    yield ProjectionRunner(views)
    views.close()


def _answer(pdb, cache, url=SAMPLE, now=None) -> dict:
    answer = orjson.loads(timeline_json(pdb, url, cache=cache, now=now))
    assert answer == timeline(pdb, url, now=now)  # a kept answer never differs
    return answer


def test_an_answer_is_kept_whole_while_nothing_is_committed(log, pdb, writer, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    writer.catch_up()
    first = timeline_json(pdb, SAMPLE, cache=cache)
    assert (cache.answer_hits, cache.misses) == (0, 1)
    assert timeline_json(pdb, SAMPLE, cache=cache) == first
    assert timeline_json(pdb, SAMPLE.replace("http:", "https:"), cache=cache) == first
    assert (cache.answer_hits, cache.hits, cache.misses) == (2, 2, 1)


def test_a_new_event_of_the_asset_committed_elsewhere_misses(log, pdb, writer, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    writer.catch_up()
    assert _answer(pdb, cache)["transformations"][0]["status"] == "accepted"
    log.append(video_event("r1", "ready", "2024-01-01T00:00:02.000Z"))
    writer.catch_up()
    (t,) = _answer(pdb, cache)["transformations"]
    assert (t["status"], t["event_count"]) == ("ready", 2)
    assert cache.answer_hits == 0


def test_another_assets_event_moves_the_kept_answers_position(log, pdb, writer, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    writer.catch_up()
    assert _answer(pdb, cache)["position"] == 1
    log.append(video_event("o1", "accepted", "2024-01-01T00:00:02.000Z", asset=OTHER))
    writer.catch_up()
    assert _answer(pdb, cache)["position"] == 2
    assert cache.answer_hits == 0  # the asset's part came from the per-asset entry
    assert cache.hits == 1


def test_a_rebuild_committed_elsewhere_misses(log, pdb, cache, tmp_path):
    copy_keeping_identity(log, tmp_path / "restored.db")  # empty, as the log is now
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    ProjectionRunner(pdb).catch_up()
    assert _answer(pdb, cache)["transformations"][0]["status"] == "accepted"
    # Read models rebuilt from another log (a restored backup): same event count for the
    # asset, same checkpoint; only the commit tells.
    # (a copy of the log, so the same identity, with another history since)
    restored = SQLiteStore(tmp_path / "restored.db")
    restored.append(video_event("e1", "error", "2024-01-01T00:00:03.000Z"))
    try:
        with ProjectionDB(restored, pdb.path) as views:
            ProjectionRunner(views).catch_up()  # sees another log: rebuilds
        raw = timeline_json(pdb, SAMPLE, cache=cache)
        (t,) = orjson.loads(raw)["transformations"]
        assert (t["status"], t["event_count"]) == ("error", 1)
        assert cache.answer_hits == 0
    finally:
        restored.close()


def test_an_event_caught_up_through_the_readers_own_connection_misses(log, pdb, runner, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    runner.catch_up()  # the same thread, the same connection: data_version does not move
    _answer(pdb, cache)
    log.append(video_event("r1", "ready", "2024-01-01T00:00:02.000Z"))
    runner.catch_up()
    assert _answer(pdb, cache)["transformations"][0]["status"] == "ready"
    assert cache.answer_hits == 0


def test_time_that_makes_a_transformation_stuck_misses(log, pdb, writer, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:00.000Z"))
    writer.catch_up()
    flags = []
    for now in ["2024-01-01T00:05:00Z", "2024-01-01T00:14:00Z", "2024-01-01T00:15:00.001Z"]:
        flags.append(_answer(pdb, cache, now=now)["transformations"][0]["stuck"])
    assert flags == [False, False, True]
    assert cache.answer_hits == 1  # 00:14 still held; 00:15:00.001 did not


def test_as_of_is_never_answered_from_a_kept_answer(log, pdb, writer, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    log.append(video_event("r1", "ready", "2024-01-01T00:00:02.000Z"))
    writer.catch_up()
    _answer(pdb, cache)
    past = orjson.loads(timeline_json(pdb, SAMPLE, as_of=1, cache=cache))
    assert (past["position"], past["transformations"][0]["status"]) == (1, "accepted")
    assert cache.answer_hits == 0


def test_each_thread_keeps_its_own_answers(log, pdb, writer, cache):
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    writer.catch_up()
    here = timeline_json(pdb, SAMPLE, cache=cache)
    there = []
    thread = threading.Thread(target=lambda: there.append(timeline_json(pdb, SAMPLE, cache=cache)))
    thread.start()
    thread.join(10)
    assert there == [here]
    assert cache.answer_hits == 0  # the other thread read (its per-asset entry hit)


def test_a_reopened_connection_never_takes_the_old_ones_answers(log, pdb, writer, cache):
    # The versions of two connections do not compare: a fresh one starts where the
    # old one may have been when it kept its answer.
    log.append(video_event("a1", "accepted", "2024-01-01T00:00:01.000Z"))
    writer.catch_up()
    with ProjectionDB(log, pdb.path) as before:
        timeline_json(before, SAMPLE, cache=cache)
    log.append(video_event("r1", "ready", "2024-01-01T00:00:02.000Z"))
    writer.catch_up()
    with ProjectionDB(log, pdb.path) as after:
        (t,) = orjson.loads(timeline_json(after, SAMPLE, cache=cache))["transformations"]
    assert t["status"] == "ready"


@pytest.mark.parametrize("answer_bytes", [0, 10_000])
def test_kept_answers_stay_within_their_byte_budget(log, pdb, writer, answer_bytes):
    cache = TimelineCache(answer_bytes=answer_bytes)
    urls = [f"https://ik.imagekit.io/demo/v{i}.mp4" for i in range(40)]
    for i, url in enumerate(urls):
        log.append(video_event(f"a{i}", "accepted", "2024-01-01T00:00:01.000Z", asset=url))
    writer.catch_up()
    size = sum(len(timeline_json(pdb, url, cache=cache)) for url in urls)
    assert size > answer_bytes  # the budget is too small for all of them
    for url in reversed(urls):  # the most recent first: those a budget keeps
        timeline_json(pdb, url, cache=cache)
    kept = cache.answer_hits
    assert kept * (size / len(urls)) <= answer_bytes * 1.1
    assert (kept > 0) == (answer_bytes > 0)
