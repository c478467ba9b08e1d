"""The SQLite log: positions, duplicates, conflicts, append-only, chain, journal."""

from __future__ import annotations

import sqlite3

import pytest

from store import Outcome, Rejection, SQLiteStore, StoreUnavailable
from tests.support import event_body
from tests.support import new_event as new


def raw(db_path, sql: str, params=()) -> list:
    """Run SQL on a separate plain connection, as an operator with sqlite3 would."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_conflicting_redelivery_is_journalled_with_its_bytes(store, db_path):
    original = event_body("e1")
    store.append(new("e1", original))
    result = store.append(new("e1", original.replace(b"accepted", b"ready")))
    assert result.outcome is Outcome.CONFLICT and result.position == 1
    assert store.get("e1").body == original
    kept = raw(db_path, "SELECT body FROM deliveries WHERE outcome = 'conflict'")
    assert kept == [(original.replace(b"accepted", b"ready"),)]


def test_two_store_instances_on_one_file_share_one_sequence(db_path, store):
    other = SQLiteStore(db_path)
    try:
        for number in range(20):
            (store if number % 2 else other).append(new(f"e{number}"))
        assert [e.position for b in store.read_batches() for e in b] == list(range(1, 21))
        assert other.verify().ok
    finally:
        other.close()


@pytest.mark.parametrize("sql", ["UPDATE events SET type = 'x'", "DELETE FROM events"])
def test_database_refuses_to_change_the_past(store, db_path, sql):
    store.append(new("e1"))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw(db_path, sql)


def tamper(db_path, sql: str, params=()) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    conn.execute(sql, params)
    conn.close()


@pytest.mark.parametrize(
    "sql,params,bad,problem",
    [
        (
            "UPDATE events SET body = ? WHERE position = 3",
            (b'{"id":"forged"}',),
            3,
            "chain mismatch",
        ),
        ("UPDATE events SET id = 'other' WHERE position = 4", (), 4, "chain mismatch"),
        ("DELETE FROM events WHERE position = 2", (), 2, "missing"),
        ("DELETE FROM events WHERE position = 1", (), 1, "missing"),
        (
            "INSERT INTO events VALUES (6, 'x', 't', 'c', 'r', 's', zeroblob(32), X'7B7D')",
            (),
            6,
            "chain mismatch",
        ),
    ],
)
def test_verify_names_first_tampered_position(store, db_path, sql, params, bad, problem):
    for number in range(5):
        store.append(new(f"e{number}"))
    assert store.verify().ok
    tamper(db_path, sql, params)
    report = store.verify()
    assert not report.ok
    assert report.first_bad_position == bad
    assert problem in report.problem


def test_rejected_journal_rows_are_capped(db_path):
    capped = SQLiteStore(db_path, rejected_keep=5)
    try:
        for number in range(12):
            capped.record_rejection(Rejection(reason=f"r{number}", status=401))
        capped.append(new("flush"))  # the writer commits queued rejections with this group
    finally:
        capped.close()
    rows = raw(db_path, "SELECT reason FROM deliveries WHERE outcome = 'rejected' ORDER BY seq")
    assert [r for (r,) in rows] == [f"r{n}" for n in range(7, 12)]


def test_locked_database_raises_store_unavailable_and_commits_nothing(db_path):
    quick = SQLiteStore(db_path, timeout=0.2)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreUnavailable, match="locked"):
            quick.append(new("e1"))
        blocker.execute("ROLLBACK")
        assert quick.append(new("e1")).outcome is Outcome.STORED  # recovers without restart
        assert quick.last_position() == 1
    finally:
        blocker.close()
        quick.close()


def test_events_by_type_are_exact_across_fold_boundaries_and_writers(db_path):
    """Counts folded every TYPE_FOLD positions plus the tail equal a full count, whoever wrote."""
    from store.sqlite import TYPE_FOLD

    types = ("video.transformation.accepted", "video.transformation.ready", "file.created")
    with SQLiteStore(db_path) as one, SQLiteStore(db_path) as two:
        n = 0
        for size in (1, TYPE_FOLD - 2, 3, 7, TYPE_FOLD + 5, 1, 2 * TYPE_FOLD, 9):
            writer = one if n % 2 else two
            batch = [new(f"e{n + i}", type_=types[(n + i) % 3]) for i in range(size)]
            writer.append_many(batch)
            n += size
            expected = dict(raw(db_path, "SELECT type, count(*) FROM events GROUP BY type"))
            assert one.stats().events_by_type == expected
            assert two.stats().events_by_type == expected
