"""Failures of the read models: typed, classified by kind, never leaving a transaction open.

Each test injects a real condition: a deferred foreign key that fails COMMIT, a
write lock held by another connection, a log whose directory went away, a file that
is not a database, tables dropped under a reader, a projection whose SQL is wrong.
"""

import os
import threading

import pytest

from projections import (
    TIMELINE,
    PoisonEvent,
    Projection,
    ProjectionDB,
    ProjectionDefect,
    ProjectionRunner,
    ReadModelCorrupt,
    ReadModelUnavailable,
    projection_status,
    timeline,
)
from projections.catchup import catch_up
from projections.checkpoints import ensure
from projections.db import transaction
from projections.failures import Kind, classify
from store import SQLiteStore, StoreUnavailable
from store.sqlite_engine import sqlite3
from tests.projections_helpers import (
    COUNTER,
    SAMPLE,
    documented_events,
    log,
    other_event,
    pdb,
    poison_event,
    status_of,
)

__all__ = ["log", "pdb"]  # fixtures


def _deferred_foreign_key(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute(
        "CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )


def test_a_failed_commit_is_rolled_back_and_the_connection_stays_usable(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        _deferred_foreign_key(conn)
        with pytest.raises(sqlite3.IntegrityError), transaction(conn):
            conn.execute("INSERT INTO child VALUES (1)")  # fails only at COMMIT
        assert not conn.in_transaction
        with transaction(conn):
            conn.execute("INSERT INTO parent VALUES (1)")
            conn.execute("INSERT INTO child VALUES (1)")
        assert conn.execute("SELECT count(*) FROM child").fetchone() == (1,)
    finally:
        conn.close()


def test_a_failed_commit_of_a_write_leaves_the_threads_connection_usable(pdb):
    with pdb.write() as conn:
        _deferred_foreign_key(conn)
    pdb.conn().execute("PRAGMA foreign_keys = ON")  # a no-op inside a transaction
    with pytest.raises(sqlite3.IntegrityError), pdb.write() as conn:
        conn.execute("INSERT INTO child VALUES (7)")
    assert not pdb.conn().in_transaction
    with pdb.write() as conn:  # BEGIN IMMEDIATE fails inside a leftover transaction
        conn.execute("INSERT INTO parent VALUES (7)")
    other = sqlite3.connect(pdb.path)
    try:
        assert other.execute("SELECT id FROM parent").fetchall() == [(7,)]
        assert other.execute("SELECT count(*) FROM child").fetchone() == (0,)
    finally:
        other.close()


def test_tables_dropped_under_a_reader_are_read_model_unavailable(log, pdb):
    log.append_many(documented_events())
    ProjectionRunner(pdb).catch_up()
    other = sqlite3.connect(pdb.path, isolation_level=None)
    try:
        other.execute("DROP TABLE timeline_events_g1")
    finally:
        other.close()
    with pytest.raises(ReadModelUnavailable) as caught:
        timeline(pdb, SAMPLE)
    assert "no such table" in str(caught.value.__cause__)
    assert classify(caught.value, TIMELINE) is Kind.TRANSIENT
    assert not pdb.conn().in_transaction


def test_a_projections_file_that_is_not_a_database_is_read_model_unavailable(log, tmp_path):
    path = tmp_path / "views.db"
    opened = ProjectionDB(log, path)  # opened while sound, used after the damage
    header = path.read_bytes()[:100]
    path.write_bytes(b"x" * 100 + path.read_bytes()[100:])
    try:
        for query in (lambda: timeline(opened, SAMPLE), lambda: projection_status(opened)):
            with pytest.raises(ReadModelUnavailable, match="not a database"):
                query()
    finally:
        opened.close()
    with pytest.raises(ReadModelCorrupt, match=f"read models in {path} are damaged"):
        ProjectionDB(log, path)
    path.write_bytes(header + path.read_bytes()[100:])
    with ProjectionDB(log, path) as db:
        assert projection_status(db) == []


def test_a_busy_projections_file_makes_catch_up_transient(log, pdb):
    ensure(pdb, TIMELINE)
    log.append_many(documented_events())
    busy = ProjectionDB(log, pdb.path, timeout=0.05)
    blocker = sqlite3.connect(pdb.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(ReadModelUnavailable) as caught:
            catch_up(busy, TIMELINE)
        assert caught.value.__cause__.sqlite_errorname == "SQLITE_BUSY"
        blocker.execute("ROLLBACK")
        assert catch_up(busy, TIMELINE) == 3
    finally:
        blocker.close()
        busy.close()


def _in_a_new_thread(fn):
    """Run fn on a fresh thread (fresh store connections); its result or its exception."""
    out = []

    def run():
        try:
            out.append(fn())
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return out[0]


def test_an_unavailable_log_is_transient_and_retried_after_the_short_backoff(tmp_path):
    (tmp_path / "log").mkdir()
    store = SQLiteStore(tmp_path / "log" / "log.db", timeout=0.05)
    db = ProjectionDB(store, tmp_path / "views.db")
    now = [0.0]
    runner = ProjectionRunner(
        db, [TIMELINE], backoff=(1.0, 8.0), defect_backoff=(100.0, 800.0), clock=lambda: now[0]
    )
    try:
        store.append_many(documented_events())
        os.rename(tmp_path / "log", tmp_path / "gone")  # a volume that went away
        try:
            assert isinstance(_in_a_new_thread(lambda: catch_up(db, TIMELINE)), StoreUnavailable)
            assert _in_a_new_thread(runner.catch_up) == {"timeline": 0}
        finally:
            os.rename(tmp_path / "gone", tmp_path / "log")
        status = status_of(db)
        assert status["error"]["message"].startswith("StoreUnavailable")
        now[0] = 0.5
        assert runner.poll_once() == {}  # still backing off
        now[0] = 1.0
        assert runner.poll_once() == {"timeline": 3}
        assert status_of(db)["error"] is None
    finally:
        db.close()
        store.close()


def test_a_malformed_body_is_poison_and_names_its_event(log, pdb):
    log.append_many([documented_events()[0], poison_event("bad", "2024-01-01T00:00:00.000Z")])
    ensure(pdb, TIMELINE)
    with pytest.raises(PoisonEvent) as caught:
        catch_up(pdb, TIMELINE)
    assert classify(caught.value.cause, TIMELINE) is Kind.POISON
    assert (caught.value.position, caught.value.event_id) == (2, "bad")
    assert status_of(pdb)["checkpoint"] == 1


# A projection whose SQL is wrong: the table it inserts into does not exist. That is
# an OperationalError, as a locked file is, but no retry will ever fix it.
calls: list[int] = []


def _broken_apply(conn, t, events):
    calls.append(len(events))
    conn.execute(f"INSERT INTO {t.seen} (position) VALUES (1)")


BROKEN = Projection(
    name="broken",
    version=1,
    handles=("file.created",),
    setup=lambda conn, t: None,
    reset=lambda conn, t: None,
    apply=_broken_apply,
    table_names=("seen",),
)


def test_a_sql_error_that_is_not_busy_is_a_defect_recorded_and_not_retried_soon(log, pdb):
    log.append_many(
        [other_event(f"f{i}", "file.created", "2024-01-01T00:00:00.000Z") for i in range(3)]
    )
    now = [0.0]
    runner = ProjectionRunner(
        pdb,
        [BROKEN, COUNTER],
        backoff=(0.01, 0.1),
        defect_backoff=(60.0, 600.0),
        clock=lambda: now[0],
    )
    calls.clear()
    assert runner.catch_up() == {"broken": 0, "counter": 3}  # the others keep going
    assert calls == [3]  # the batch failed as a whole: no event was blamed
    status = next(s for s in projection_status(pdb) if s["name"] == "broken")
    assert status["checkpoint"] == 0
    assert status["error"]["position"] is None
    assert "ProjectionDefect" in status["error"]["message"]
    assert "no such table" in status["error"]["message"]
    for second in range(60):  # a pass of the background loop every second of the backoff
        now[0] = float(second)
        runner.poll_once()
    assert calls == [3]
    now[0] = 60.0
    runner.poll_once()
    assert calls == [3, 3]  # retried once the backoff is over ...
    now[0] = 179.0
    runner.poll_once()
    assert calls == [3, 3]  # ... and the next backoff is twice as long
    now[0] = 180.0
    runner.poll_once()
    assert calls == [3, 3, 3]


def test_a_defect_leaves_catch_up_as_projection_defect_with_nothing_kept(log, pdb):
    log.append(other_event("f", "file.created", "2024-01-01T00:00:00.000Z"))
    ensure(pdb, BROKEN)
    with pytest.raises(ProjectionDefect) as caught:
        catch_up(pdb, BROKEN)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert classify(caught.value, BROKEN) is Kind.DEFECT
    assert not pdb.conn().in_transaction
    assert next(s for s in projection_status(pdb) if s["name"] == "broken")["checkpoint"] == 0
