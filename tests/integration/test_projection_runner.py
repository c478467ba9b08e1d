"""Catch-up: checkpoints, poison events, the background thread, several writers."""

import dataclasses
import threading
import time

import pytest

from projections import (
    TIMELINE,
    AssetNotFound,
    ProjectionDB,
    ProjectionRunner,
    asset_positions,
    projection_status,
    timeline,
)
from store.sqlite_engine import sqlite3
from tests.projections_helpers import (
    COUNTER,
    SAMPLE,
    documented_events,
    log,
    other_event,
    pdb,
    poison_event,
    runner,
    video_event,
)

__all__ = ["log", "pdb", "runner"]  # fixtures


def _seen(db: ProjectionDB) -> list[int]:
    with db.read() as conn:
        (generation,) = conn.execute(
            "SELECT generation FROM projection_meta WHERE name = 'counter'"
        ).fetchone()
        rows = conn.execute(f"SELECT position FROM counter_seen_g{generation} ORDER BY 1")
        return [p for (p,) in rows]


def _status(db, name):
    return next(s for s in projection_status(db) if s["name"] == name)


def test_ignored_events_advance_the_checkpoint(log, pdb, runner):
    log.append_many(
        [other_event(f"f{i}", "file.updated", "2024-01-01T00:00:00.000Z") for i in range(5)]
    )
    assert runner.catch_up()["timeline"] == 0  # every projection runs; the timeline skips them
    status = _status(pdb, "timeline")
    assert (status["checkpoint"], status["lag"], status["error"]) == (5, 0, None)


def test_poison_event_stops_that_projection_only_and_is_reported(log, pdb):
    log.append_many(
        [
            video_event("a", "accepted", "2024-01-01T00:00:01.000Z"),
            other_event("f1", "file.created", "2024-01-01T00:00:01.000Z"),
            poison_event("bad", "2024-01-01T00:00:02.000Z"),
            video_event("r", "ready", "2024-01-01T00:00:03.000Z"),
            other_event("f2", "file.created", "2024-01-01T00:00:04.000Z"),
        ]
    )
    runner = ProjectionRunner(pdb, [TIMELINE, COUNTER], backoff=(0.01, 0.05))
    runner.catch_up()
    status = _status(pdb, "timeline")
    assert status["checkpoint"] == 2
    assert status["error"]["position"] == 3
    assert status["error"]["event_id"] == "bad"
    assert "malformed JSON" in status["error"]["message"]
    assert _status(pdb, "counter")["checkpoint"] == 5
    assert _seen(pdb) == [2, 5]
    (t,) = timeline(pdb, SAMPLE)["transformations"]
    assert t["status"] == "accepted"  # the ready after the poison is not applied
    # Ingest goes on, the projection retries and keeps reporting.
    log.append(video_event("z", "accepted", "2024-01-01T00:00:05.000Z"))
    runner.catch_up()
    status = _status(pdb, "timeline")
    assert (status["checkpoint"], status["error"]["attempts"]) == (2, 2)


def test_failed_batch_commits_nothing_past_the_poison(log, pdb):
    events = [other_event(f"f{i}", "file.created", "2024-01-01T00:00:00.000Z") for i in range(6)]
    events[3] = other_event("boom", "file.created", "2024-01-01T00:00:00.000Z")
    log.append_many(
        [
            e
            if e.id != "boom"
            else e.__class__(e.id, e.type, e.created_at, b'{"x":"boom"}', e.scheme)
            for e in events
        ]
    )
    runner = ProjectionRunner(pdb, [COUNTER], batch_size=100)
    runner.catch_up()
    # The whole batch was one transaction: rows before the poison kept, the poison's own row rolled back.
    assert _seen(pdb) == [1, 2, 3]
    assert _status(pdb, "counter")["checkpoint"] == 3
    runner.catch_up()  # retrying never applies an event twice (the PRIMARY KEY would say so)
    assert _seen(pdb) == [1, 2, 3]


def test_background_thread_shows_new_events_within_a_second(log, pdb, runner):
    runner.start()
    with __import__("contextlib").suppress(AssetNotFound):
        timeline(pdb, SAMPLE)
    log.append_many(documented_events())
    deadline = time.monotonic() + 1.0
    while True:
        try:
            if timeline(pdb, SAMPLE)["position"] == 3:
                break
        except AssetNotFound:
            pass
        assert time.monotonic() < deadline, "not visible within a second"
        time.sleep(0.01)
    runner.stop()
    assert not runner.running


def test_two_runners_on_one_file_apply_each_event_once(log, tmp_path):
    path = str(tmp_path / "shared.projections.db")
    first, second = ProjectionDB(log, path), ProjectionDB(log, path)
    runners = [ProjectionRunner(db, [COUNTER, TIMELINE], idle_wait=0.001) for db in (first, second)]
    try:
        for r in runners:
            r.start()
        for i in range(40):
            log.append_many(
                [
                    other_event(f"f{i}", "file.created", "2024-01-01T00:00:00.000Z"),
                    video_event(
                        f"v{i}", "accepted", "2024-01-01T00:00:00.000Z", request_id=f"q{i}"
                    ),
                ]
            )
        for r in runners:
            r.stop()
        runners[0].catch_up()
        assert _seen(first) == list(range(1, 81, 2))
        assert len(asset_positions(first, SAMPLE)) == 40
        assert _status(first, "counter")["error"] is None
    finally:
        for r in runners:
            r.stop()
        first.close()
        second.close()


def test_catch_up_thread_survives_a_locked_projections_file(log, pdb, runner):
    pdb.timeout = 0.05
    log.append_many(documented_events())
    blocker = sqlite3.connect(pdb.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        result = threading.Thread(target=runner.catch_up)
        result.start()
        result.join(5)
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    runner.catch_up()
    assert timeline(pdb, SAMPLE)["position"] == 3


class _Waits:
    """The store, noting each `wait` the runner makes and what it returned."""

    def __init__(self, store):
        self._store = store
        self.waits: list[tuple[int, float, int]] = []
        self.woken = threading.Event()

    def __getattr__(self, name):
        return getattr(self._store, name)

    def wait(self, after: int, timeout: float) -> int:
        found = self._store.wait(after, timeout)
        self.waits.append((after, timeout, found))
        if found > after:
            self.woken.set()
        return found


def test_background_thread_sleeps_on_the_store_until_an_event_arrives(log, tmp_path):
    store = _Waits(log)
    db = ProjectionDB(store, tmp_path / "views.db")
    runner = ProjectionRunner(db, idle_wait=2.0)
    try:
        runner.start()
        for i in range(10):  # an append while the runner sleeps in `wait` wakes it
            log.append(other_event(f"f{i}", "file.created", "2024-01-01T00:00:00.000Z"))
            if store.woken.wait(5):
                break
        assert store.woken.is_set(), "the runner never woke on the store"
        head = log.last_position()
        deadline = time.monotonic() + 30
        while _status(db, "timeline")["checkpoint"] < head:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        runner.stop()
        assert not runner.running
    finally:
        runner.stop()
        db.close()
    assert all(timeout <= 2.0 for _, timeout, _ in store.waits)  # stop() stays prompt
    assert all(0 <= after <= head for after, _, _ in store.waits)


def test_tables_name_only_what_a_projection_declares():
    tables = TIMELINE.tables(3)
    assert (tables.events, tables.assets) == ("timeline_events_g3", "timeline_assets_g3")
    assert COUNTER.tables(1).seen == "counter_seen_g1"
    with pytest.raises(AttributeError, match="declares no table 'evnets'"):
        _ = tables.evnets
    with pytest.raises(AttributeError):
        _ = COUNTER.tables(1).events  # another projection's table is not this one's


def test_a_projection_with_a_table_name_sql_cannot_hold_is_refused():
    with pytest.raises(ValueError, match="not a table name part"):
        dataclasses.replace(COUNTER, table_names=("seen; DROP TABLE x",))


def test_a_background_pass_stops_at_its_budget_and_the_next_one_goes_on(log, pdb):
    """A pass gives each projection a time budget: a backlog of one projection (the
    search index, say) never keeps the others of the pass from being fresh."""
    log.append_many(
        [other_event(f"f{i}", "file.created", "2024-01-01T00:00:00.000Z") for i in range(7)]
    )
    runner = ProjectionRunner(pdb, [COUNTER], batch_size=2, pass_budget=0.0)
    assert runner.poll_once() == {"counter": 2}  # one batch, then out of time
    assert _status(pdb, "counter")["checkpoint"] == 2
    assert runner.poll_once() == {"counter": 2}
    assert runner.catch_up() == {"counter": 3}  # an explicit catch-up goes to the head
    assert _status(pdb, "counter")["checkpoint"] == 7 and _seen(pdb) == list(range(1, 8))
