"""What the PostgreSQL backend adds to the contract: migrations, durability checks,
redaction, equal chains with SQLite, the receiver role, backup, wake-ups."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from store import NewEvent, SQLiteStore, StoreError, StoreUnavailable, open_store
from store.postgres import PostgresStore, receiver_role_sql
from store.postgres.connect import Target
from store.postgres.schema import migrations
from tests.postgres.helpers import eventually
from tests.support import ROOT, event_body, invoke_cli, new_event, payload, payload_names


def test_five_stores_starting_at_once_migrate_once(postgres_url, pg_admin):
    barrier = threading.Barrier(5)
    stores, errors = [], []

    def start() -> None:
        barrier.wait(timeout=10)
        try:
            stores.append(PostgresStore(postgres_url, timeout=10))
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        applied = pg_admin.execute("SELECT version FROM ikledger_schema ORDER BY 1").fetchall()
        assert [row[0] for row in applied] == [version for version, _, _ in migrations()]
        assert stores[0].append(new_event("after-migration")).position == 1
    finally:
        for store in stores:
            store.close()


_RECEIVER_START = """
import sys, time
from store.postgres import PostgresStore
from tests.support import new_event
url, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))  # all processes open the store at once
with PostgresStore(url, timeout=20) as store:
    store.append(new_event(name))
"""


def test_five_receiver_processes_starting_at_once_migrate_once(postgres_url, pg_admin):
    start = time.time() + 2.0
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _RECEIVER_START, postgres_url, f"r{n}", str(start)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for n in range(5)
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()[-2000:]
    applied = pg_admin.execute("SELECT version FROM ikledger_schema ORDER BY 1").fetchall()
    assert [row[0] for row in applied] == [version for version, _, _ in migrations()]
    events = pg_admin.execute("SELECT position FROM events ORDER BY 1").fetchall()
    assert [row[0] for row in events] == [1, 2, 3, 4, 5]


def test_same_events_give_byte_identical_chains_on_sqlite_and_postgresql(pg_store, tmp_path):
    events = [
        NewEvent(f"id-{n}-é", name, "2024-01-01T00:00:00.000Z", payload(name), "x-ik-signature")
        for n, name in enumerate(payload_names())
    ]
    events += [new_event(f"small-{n}") for n in range(20)]
    with SQLiteStore(tmp_path / "log.db") as lite:
        for start in range(0, len(events), 7):  # groups of different sizes on each side
            lite.append_many(events[start : start + 7])
        pg_store.append_many(events)
        sqlite_chain = [(e.position, e.id, e.chain) for b in lite.read_batches(0) for e in b]
        pg_chain = [(e.position, e.id, e.chain) for b in pg_store.read_batches(0) for e in b]
        assert pg_chain == sqlite_chain
        assert pg_store.verify().head == lite.verify().head == pg_chain[-1][2]


def test_refuses_to_start_when_synchronous_commit_is_off(postgres_url, postgres_db, pg_admin):
    pg_admin.execute(f'ALTER DATABASE "{postgres_db}" SET synchronous_commit = off')
    with pytest.raises(StoreError, match="synchronous_commit is off"):
        PostgresStore(postgres_url, timeout=3)


def test_password_never_appears_in_display_name_repr_or_errors(postgres_cluster, postgres_db):
    url = postgres_cluster.url(postgres_db)
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password and password in url
    with PostgresStore(url, timeout=3) as store:
        assert password not in store.display_name and password not in repr(store)
        assert store.display_name.startswith("postgresql://ikledger@127.0.0.1:")
        assert store.display_name.endswith("/" + postgres_db)
    wrong = url.replace(password, password + "-wrong")
    with pytest.raises(StoreError) as refused:
        PostgresStore(wrong, timeout=3)
    assert "password authentication failed" in str(refused.value)
    nowhere = url.replace(f":{url.rsplit(':', 1)[1].split('/')[0]}/", ":1/")
    with pytest.raises(StoreUnavailable) as unreachable:
        PostgresStore(nowhere, timeout=2)
    for error in (refused.value, unreachable.value):
        assert password not in str(error) and password not in repr(error)
    for text in (f"{url}?x=%zz", f"host=127.0.0.1 password={password} bogus"):
        with pytest.raises(StoreError) as malformed:
            PostgresStore(text, timeout=2)
        assert password not in str(malformed.value)


def test_connection_waits_are_bounded_by_the_store_timeout(postgres_url):
    target = Target(postgres_url, 2.5)
    with target.connect() as conn:
        settings = conn.execute(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'),"
            " current_setting('idle_in_transaction_session_timeout'),"
            " current_setting('default_transaction_isolation')"
        ).fetchone()
    assert settings == ("1250ms", "2s", "2500ms", "read committed")


def test_a_silent_server_fails_the_connect_within_the_timeout():
    with socket.socket() as silent:  # accepts TCP, never answers the startup packet
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(StoreUnavailable, match="connect"):
            PostgresStore(f"postgresql://x:secret@127.0.0.1:{port}/db", timeout=2)


def test_receiver_role_may_read_and_append_but_not_write_tables(
    postgres_cluster, postgres_db, pg_store, pg_admin
):
    role = f"rx_{postgres_db}"
    pg_admin.execute(receiver_role_sql(role, "rx-pass", database=postgres_db))
    try:
        url = postgres_cluster.url(postgres_db).replace("ikledger:", f"{role}:", 1)
        url = url.replace(url.split(":")[2].split("@")[0], "rx-pass", 1)
        with PostgresStore(url, timeout=3) as receiver:
            assert receiver.append(new_event("by-role")).position == 1
            assert receiver.get("by-role") is not None and receiver.verify().ok
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in (
                "INSERT INTO log_head VALUES (true, 0, '\\x00')",
                "UPDATE events SET type = 'x'",
                "DELETE FROM deliveries",
                "TRUNCATE events",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        pg_admin.execute(f'DROP OWNED BY "{role}"')
        pg_admin.execute(f'DROP ROLE "{role}"')


def test_backup_is_a_sqlite_log_that_verifies_with_the_same_head(pg_store, tmp_path):
    for number in range(30):
        pg_store.append(new_event(f"b{number}"))
    stop = threading.Event()

    def keep_appending() -> None:
        number = 0
        while not stop.is_set() and number < 2000:
            pg_store.append(new_event(f"during-{number}"))
            number += 1

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        count = pg_store.backup(tmp_path / "copy.db")
    finally:
        stop.set()
        writer.join(timeout=30)
    snapshot = [e for batch in pg_store.read_batches(0, until=count) for e in batch]
    with open_store(str(tmp_path / "copy.db")) as copy:
        report = copy.verify()
        assert report.ok and report.events == count >= 30
        assert report.head == snapshot[-1].chain
        copied = [e for batch in copy.read_batches(0) for e in batch]
    assert [(e.id, e.body, e.received_at) for e in copied] == [
        (e.id, e.body, e.received_at) for e in snapshot
    ]


def test_wait_wakes_when_another_store_appends(open_pg):
    reader, writer = open_pg(), open_pg()
    assert reader.wait(0, 0.05) == 0
    woke = []
    thread = threading.Thread(target=lambda: woke.append(reader.wait(0, 20)))
    thread.start()
    writer.append(new_event("wake-up"))
    thread.join(timeout=30)
    assert woke == [1]


def test_a_missed_notification_is_caught_up_by_the_poll(
    postgres_cluster, postgres_db, open_pg, pg_admin
):
    reader, writer = open_pg(), open_pg()
    reader.wait(0, 0.01)  # starts the listener
    eventually(lambda: _listeners(pg_admin, postgres_db), what="the listener")
    pg_admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND query LIKE 'LISTEN%%'",
        (postgres_db,),
    )
    writer.append(new_event("unheard"))  # nobody listens: no notification arrives
    assert reader.wait(0, 20) == 1


def _listeners(admin, dbname: str) -> int:
    return admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'",
        (dbname,),
    ).fetchone()[0]


def test_type_counts_and_stats_come_from_counters(pg_store, pg_admin):
    accepted = [new_event(f"a{n}") for n in range(5)]
    pg_store.append_many(accepted)
    pg_store.append_many([new_event(f"r{n}", type_="video.transformation.ready") for n in range(3)])
    pg_store.append(accepted[0])  # a duplicate counts no event
    expected = {"video.transformation.accepted": 5, "video.transformation.ready": 3}
    assert pg_store.type_counts() == expected
    stats = pg_store.stats()
    assert (stats.events, stats.events_by_type) == (8, expected)
    assert stats.deliveries == {"duplicate": 1, "stored": 8}
    counted = dict(pg_admin.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
    assert counted == expected


def test_verify_names_the_first_changed_or_removed_position(pg_store, pg_admin):
    for number in range(6):
        pg_store.append(new_event(f"v{number}"))
    pg_admin.execute("ALTER TABLE events DISABLE TRIGGER USER")
    pg_admin.execute("DELETE FROM events WHERE position = 6")
    report = pg_store.verify()
    assert (report.ok, report.first_bad_position) == (False, 6)
    pg_admin.execute("UPDATE events SET body = body || '\\x20'::bytea WHERE position = 4")
    report = pg_store.verify()
    assert (report.ok, report.first_bad_position) == (False, 4)


def test_a_sqlite_log_moves_to_postgresql_with_the_same_events_and_head(postgres_url, tmp_path):
    lite = tmp_path / "old.db"
    with SQLiteStore(lite) as old:
        old.append_many(
            [
                NewEvent(
                    f"m{n}",
                    "video.transformation.accepted",
                    "2024-01-02T03:04:05.678Z",  # what event_body writes
                    event_body(f"m{n}"),
                    "standard-webhooks",
                )
                for n in range(40)
            ]
        )
        old_events = [(e.position, e.id, e.body, e.chain) for b in old.read_batches(0) for e in b]
    exported = tmp_path / "export.jsonl"
    assert invoke_cli("export", "-o", str(exported), db=lite).returncode == 0
    moved = invoke_cli("import", str(exported), "--db", postgres_url)
    assert moved.returncode == 0, moved.stderr.decode()
    for location in (str(lite), postgres_url):
        checked = invoke_cli("verify", "--db", location)
        assert checked.returncode == 0 and old_events[-1][3].hex() in checked.stdout.decode()
    with PostgresStore(postgres_url, timeout=3) as new:
        assert [(e.position, e.id, e.body, e.chain) for b in new.read_batches(0) for e in b] == (
            old_events
        )
