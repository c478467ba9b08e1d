"""The SQLite log: positions, duplicates, conflicts, append-only, chain, journal."""

from __future__ import annotations

import threading
import time

import pytest

from receiver.events import select_events
from store import Outcome, Rejection, SQLiteStore, StoreClosed, StoreUnavailable, open_store
from store.sqlite_engine import sqlite3
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


def test_delivery_counts_are_exact_across_fold_boundaries_pruning_and_writers(db_path):
    """Folded journal counters plus the tail equal a full count, whoever wrote, after pruning."""
    from store.sqlite.migrations import DELIVERY_FOLD

    def full_count() -> dict:
        return dict(raw(db_path, "SELECT outcome, count(*) FROM deliveries GROUP BY outcome"))

    with (
        SQLiteStore(db_path, rejected_keep=300) as one,
        SQLiteStore(db_path, rejected_keep=300) as two,
    ):
        n = 0
        for round_, size in enumerate((1, DELIVERY_FOLD - 2, 5, 400, DELIVERY_FOLD + 7, 3)):
            writer = one if round_ % 2 else two
            batch = [new(f"e{n + i}") for i in range(size)]
            writer.append_many(batch)
            writer.append_many(batch[: size // 2])  # duplicates
            for i in range(size // 3):
                writer.record_rejection(Rejection(reason=f"r{i}", status=401))
            writer.append(new(f"flush{round_}"))  # commits the queued refusals
            n += size
            assert one.stats().deliveries == full_count()
            assert two.stats().deliveries == full_count()
    assert full_count()["rejected"] == 300  # pruning happened, the counts followed it


def test_old_journal_with_scheme_codes_as_text_reads_scheme_names_after_migration(db_path):
    from sqlite_utils import Database

    from store.sqlite import migrations

    conn = sqlite3.connect(db_path, isolation_level=None)
    migrations.apply(Database(conn), stop_before="m005_deliveries_scheme_is_a_code")
    conn.execute(
        "INSERT INTO events VALUES (1, 'e1', 't', '2024-01-01T00:00:00.000Z', 0, 1, ?, x'7B7D')",
        (b"\0" * 32,),
    )
    conn.executemany(
        "INSERT INTO deliveries (received_at, outcome, status, event_id, position, scheme) "
        "VALUES (?, ?, ?, 'e1', ?, ?)",
        [(None, "stored", None, 1, None), (5, "duplicate", 200, 1, 1)]
        + [
            (6, "conflict", 200, 1, 0),
            (7, "rejected", 401, None, 1),
            (8, "rejected", 401, None, "legacy-x"),
        ],
    )
    conn.close()
    before = raw(db_path, "SELECT DISTINCT typeof(scheme) FROM deliveries WHERE scheme NOT NULL")
    assert before == [("text",)]  # the defect: codes stored as "0"/"1"
    with SQLiteStore(db_path) as store:
        rows = store.deliveries(event_id="e1")
        assert [(d.outcome, d.scheme) for d in rows] == [
            ("rejected", "legacy-x"),
            ("rejected", "x-ik-signature"),
            ("conflict", "standard-webhooks"),
            ("duplicate", "x-ik-signature"),
            ("stored", "x-ik-signature"),
        ]
        assert store.stats().deliveries == {
            "conflict": 1,
            "duplicate": 1,
            "rejected": 2,
            "stored": 1,
        }
    kinds = raw(db_path, "SELECT seq, typeof(scheme) FROM deliveries ORDER BY seq")
    assert kinds == [(1, "null"), (2, "integer"), (3, "integer"), (4, "integer"), (5, "text")]


def test_display_name_is_the_absolute_path_and_opens_the_same_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with SQLiteStore("relative.db") as store:
        store.append(new("e1"))
        assert store.display_name == f"sqlite://{tmp_path / 'relative.db'}"
        again = open_store(store.display_name)
        try:
            assert again.get("e1") is not None and again.display_name == store.display_name
        finally:
            again.close()


def test_sqlite_source_is_a_read_only_relation_of_the_log(store, tmp_path):
    for number in range(5):
        store.append(new(f"e{number}", type_="file.created"))
    conn = sqlite3.connect(tmp_path / "elsewhere.db", isolation_level=None)
    try:
        relation = store.sqlite_source(conn, "log")
        assert store.sqlite_source(conn, "log") == relation  # idempotent on one connection
        rows = conn.execute(
            f"SELECT position, id, type, created_at, body FROM {relation} WHERE position > 2"
        ).fetchall()
        assert [r[:3] for r in rows] == [(3, "e2", "file.created"), (4, "e3", "file.created")] + [
            (5, "e4", "file.created")
        ]
        assert rows[0][4] == store.get("e2").body
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO log.type_counts VALUES ('x', 1)")
        store.append(new("e5"))  # visible to the next read of the relation
        assert conn.execute(f"SELECT max(position) FROM {relation}").fetchone() == (6,)
    finally:
        conn.close()


def test_unreadable_row_raises_store_corrupt_not_unavailable(store, db_path):
    from store import StoreCorrupt

    for number in range(3):
        store.append(new(f"e{number}"))
    tamper(db_path, "UPDATE events SET body = CAST(body AS TEXT) WHERE position = 2")
    with pytest.raises(StoreCorrupt, match="position 2"):
        list(store.read_batches(0))
    with pytest.raises(StoreCorrupt, match="position 2"):
        store.get("e1")
    assert store.get("e0").position == 1  # the rest stays readable
    assert store.verify().first_bad_position == 2


def test_wait_sees_another_process_appending_by_polling(db_path, store):
    other = SQLiteStore(db_path)
    try:
        appender = threading.Thread(target=lambda: other.append(new("from-other")))
        started = time.monotonic()
        appender.start()
        assert store.wait(0, timeout=60.0) == 1  # no notification crosses stores: polled
        assert time.monotonic() - started < 30.0, "wait() slept to its timeout"
        appender.join(30.0)
    finally:
        other.close()


def test_not_a_database_raises_store_corrupt(tmp_path):
    from store import StoreCorrupt

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a SQLite database, just text" * 200)
    with pytest.raises(StoreCorrupt, match="SQLITE_NOTADB"):
        SQLiteStore(garbage)


class WriterKilled(BaseException):
    """Escapes `except Exception`, as a thread death does."""


class KillingId(str):
    """An id whose hashing raises inside the write transaction (after BEGIN IMMEDIATE)."""

    def __hash__(self):
        raise WriterKilled("injected inside the transaction")


def test_writer_killed_inside_a_transaction_releases_the_lock_and_is_replaced(db_path):
    from store import NewEvent

    with SQLiteStore(db_path, timeout=5.0) as store, SQLiteStore(db_path, timeout=5.0) as other:
        store.append(new("before"))
        killer = NewEvent(KillingId("k"), "t", "2024-01-01T00:00:00.000Z", b"{}", "x-ik-signature")
        with pytest.raises(StoreUnavailable, match="died"):
            store.append(killer)
        assert "WriterKilled" in store.check_writable()
        assert other.append(new("other")).position == 2  # the write lock was released
        assert store.append(new("after")).position == 3  # a fresh writer thread
        assert store.check_writable(max_age=0) is None
        assert store.verify().ok


def test_deliveries_of_each_event_equal_a_full_scan_of_the_journal(db_path):
    """The stored row found by bisection, redeliveries and refusals, for every event."""
    import random

    rng = random.Random(7)
    with SQLiteStore(db_path) as one, SQLiteStore(db_path) as two:
        events = [new(f"e{n}") for n in range(300)]
        start = 0
        while start < len(events):
            writer = rng.choice((one, two))
            size = rng.choice((1, 2, 5, 17, 40))
            batch = events[start : start + size]
            start += size
            batch += rng.sample(events[:start], k=min(start, rng.choice((0, 0, 3, 30))))
            for _ in range(rng.choice((0, 0, 2, 25))):
                named = rng.choice(events[:start]).id
                writer.record_rejection(Rejection("bad_signature", 401, event_id=named))
            writer.append_many(batch)
        one.append(new("flush"))  # commits the last refusals
        for event in [*events, new("never-stored")]:
            expected = raw(
                db_path,
                "SELECT seq, outcome FROM journal WHERE position = "
                "(SELECT position FROM events WHERE id = ?) "
                "OR (outcome = 'rejected' AND event_id = ?) ORDER BY seq DESC",
                (event.id, event.id),
            )
            found = [(d.seq, d.outcome) for d in one.deliveries(event_id=event.id, limit=1000)]
            assert found == expected, event.id
        assert one.deliveries(event_id="e0", limit=2) == one.deliveries(event_id="e0")[:2]


def test_writers_take_turns_through_the_lock_file_beside_the_log(db_path):
    """While another writer holds the writers' lock, nothing commits; then it does."""
    import fcntl
    import os

    quick = SQLiteStore(db_path, timeout=0.5)
    other = os.open(f"{db_path}-writer.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)  # as another process's writer, mid-commit
        event = new("e1")
        with pytest.raises(StoreUnavailable):
            quick.append(event)
        assert raw(db_path, "SELECT count(*) FROM events") == [(0,)]
        fcntl.flock(other, fcntl.LOCK_UN)
        assert quick.append(event).outcome is Outcome.STORED
        assert quick.append(event).outcome is Outcome.DUPLICATE
    finally:
        os.close(other)
        quick.close()


def test_log_created_before_identities_gets_one_by_migration_and_keeps_it(db_path):
    from sqlite_utils import Database

    from store.sqlite import migrations

    conn = sqlite3.connect(db_path, isolation_level=None)
    migrations.apply(Database(conn), stop_before="m008_log_meta")
    conn.close()
    with SQLiteStore(db_path) as store:
        given = store.log_id()
    with SQLiteStore(db_path) as store:
        assert store.log_id() == given
    assert raw(db_path, "SELECT value FROM log_meta WHERE key = 'log_id'") == [(given,)]


def _steps(store, read) -> int:
    """SQLite virtual-machine steps `read()` costs on this thread's reader connection."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    store.last_position()  # opens this thread's connection
    conn = store._reader()
    conn.set_progress_handler(count, 1)
    try:
        read()
    finally:
        conn.set_progress_handler(None, 1)
    return steps[0]


def test_a_created_at_range_holding_nothing_reads_nothing(store):
    # GET /events?since=<future>: the log is not scanned (bodies included) to find
    # that nothing matches; it costs less than reading a page of 5 events.
    store.append_many([new(f"e{n}") for n in range(3000)])
    future = "2999-01-01T00:00:00.000Z"
    nothing = _steps(store, lambda: list(select_events(store, since=future, limit=51)))
    page = _steps(store, lambda: list(store.read_batches(0, batch_size=5, until=5)))
    assert nothing < page


def _query_in_thread(store, sql: str, on_step):
    """Run `sql` on a thread of its own; `on_step` is its connection's progress handler."""
    outcome: dict = {}

    def run() -> None:
        store.last_position()  # this thread's connection
        store._reader().set_progress_handler(on_step, 1000)
        try:
            outcome["rows"] = store._query(sql)
        except Exception as exc:  # noqa: BLE001 -- the test looks at what it was
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_close_waits_for_a_read_running_on_another_thread(db_path):
    store = SQLiteStore(db_path, timeout=5.0)
    started, proceed = threading.Event(), threading.Event()

    def on_step() -> int:
        started.set()
        proceed.wait(20)
        return 0

    count = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) "
    reader, outcome = _query_in_thread(store, count + "SELECT x FROM c", on_step)
    assert started.wait(20)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.3)  # time for a close that does not wait to reach the connection
    proceed.set()
    reader.join(20)
    closer.join(20)
    assert not reader.is_alive() and not closer.is_alive()
    # Every row, read to the end on its connection: not cut off by close.
    assert outcome == {"rows": [(x,) for x in range(1, 5001)]}
    with pytest.raises(StoreClosed):
        store.last_position()


def test_close_interrupts_a_read_that_does_not_finish(db_path):
    store = SQLiteStore(db_path, timeout=0.2)
    started = threading.Event()

    def on_step() -> int:
        started.set()
        return 0

    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    reader, outcome = _query_in_thread(store, endless + "SELECT count(*) FROM c", on_step)
    assert started.wait(20)
    store.close()  # bounded: waits 0.2 s, then interrupts the read
    reader.join(20)
    assert not reader.is_alive()
    assert isinstance(outcome.get("error"), StoreClosed)
