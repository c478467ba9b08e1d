"""Rows changed, removed or inserted behind ikledger's back; backups taken under load."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from store import GENESIS, SQLiteStore, body_digest, chain_link
from store.sqlite_engine import sqlite3
from tests.support import event_body, invoke_cli, query_rows, serve, signed

EVENTS = 10


@pytest.fixture
def log(db_path):
    with SQLiteStore(db_path) as store:
        from store import NewEvent

        for i in range(1, EVENTS + 1):
            body = event_body(f"evt-{i}")
            store.append(
                NewEvent(
                    id=f"evt-{i}",
                    type="video.transformation.accepted",
                    created_at="2024-01-02T03:04:05.678Z",
                    body=body,
                    scheme="standard-webhooks",
                )
            )
    return db_path


def tamper(db_path, *statements) -> None:
    """Drop the triggers and run SQL, as anyone with the file and sqlite3 could."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS events_no_update")
        conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
        for sql, params in statements:
            conn.execute(sql, params)
    finally:
        conn.close()


def verify(db_path, *args):
    result = invoke_cli("verify", *args, db=db_path)
    return result.returncode, result.stdout.decode() + result.stderr.decode()


def row(db_path, position):
    return query_rows(db_path, "SELECT * FROM events WHERE position = ?", (position,))[0]


def chain_at(db_path, position) -> bytes:
    return query_rows(db_path, "SELECT chain FROM events WHERE position = ?", (position,))[0][0]


def forged(db_path, position: int, event_id: str, body: bytes) -> bytes:
    """A correct link for an inserted event, computed from the row before it."""
    previous = GENESIS if position == 1 else chain_at(db_path, position - 1)
    return chain_link(previous, event_id, body_digest(body))


INSERT = (
    "INSERT INTO events (position, id, type, created_at, received_at, scheme, chain, body)"
    " VALUES (4, 'evt-new', 'video.transformation.accepted', '2024-01-02T03:04:05.678Z',"
    " '2024-01-02T03:04:05.678Z', 'standard-webhooks', ?, ?)"
)
SAME_LENGTH = event_body("evt-4").replace(b"2024-01-02", b"2025-01-02")

CHANGES = {
    "body_changed": ("UPDATE events SET body = ? WHERE position = 4", (SAME_LENGTH,), 4),
    "body_one_byte": ("UPDATE events SET body = body || x'20' WHERE position = 7", (), 7),
    "id_changed": ("UPDATE events SET id = 'evt-x' WHERE position = 3", (), 3),
    "chain_changed": ("UPDATE events SET chain = zeroblob(32) WHERE position = 5", (), 5),
    "type_changed": ("UPDATE events SET type = 'file.deleted' WHERE position = 6", (), 6),
    "created_at_changed": (
        "UPDATE events SET created_at = '2020-01-01T00:00:00.000Z' WHERE position = 2",
        (),
        2,
    ),
    "first_deleted": ("DELETE FROM events WHERE position = 1", (), 1),
    "middle_deleted": ("DELETE FROM events WHERE position = 6", (), 6),
    "two_swapped": (
        "UPDATE events SET position = 8 + 9 - position WHERE position IN (8, 9)",
        (),
        8,
    ),
}


@pytest.mark.parametrize("sql,params,bad", CHANGES.values(), ids=CHANGES.keys())
def test_verify_names_the_first_changed_or_deleted_position(log, sql, params, bad):
    assert verify(log)[0] == 0
    if "SET position" in sql:  # swap through a free position: the primary key is unique
        tamper(
            log,
            ("UPDATE events SET position = 100 WHERE position = 8", ()),
            ("UPDATE events SET position = 8 WHERE position = 9", ()),
            ("UPDATE events SET position = 9 WHERE position = 100", ()),
        )
    else:
        tamper(log, (sql, params))
    code, output = verify(log)
    assert code == 1
    assert f"FAILED at position {bad}:" in output


def test_verify_names_an_event_inserted_at_the_end_with_a_made_up_link(log):
    body = event_body("evt-new")
    tamper(
        log,
        (
            INSERT.replace("VALUES (4,", "VALUES (?,"),
            (EVENTS + 1, b"\x01" * 32, body),
        ),
    )
    code, output = verify(log)
    assert code == 1 and f"FAILED at position {EVENTS + 1}:" in output


def test_verify_names_an_event_inserted_in_the_middle_with_a_correct_link(log):
    """The forger links the inserted row correctly; the tree's leaf at its position
    still commits to the event that was there, so the inserted row itself is named
    (the chain alone would only catch the next, untouched row)."""
    body = event_body("evt-new")
    link = forged(log, 4, "evt-new", body)
    statements = [
        ("UPDATE events SET position = position + 100 WHERE position >= 4", ()),
        ("UPDATE events SET position = position - 99 WHERE position >= 100", ()),
        (INSERT, (link, body)),
    ]
    tamper(log, *statements)
    code, output = verify(log)
    assert code == 1 and "FAILED at position 4:" in output


def test_removed_tail_or_recomputed_chain_is_caught_by_the_recorded_head(log):
    head = json.loads(invoke_cli("status", "--json", db=log).stdout)["head"]
    tamper(log, ("DELETE FROM events WHERE position = ?", (EVENTS,)))
    # The chain alone cannot see a shorter log (docs/store.md); the tree still holds the
    # removed event's hashes, so verify names it.
    code, output = verify(log)
    assert code == 1 and f"FAILED at position {EVENTS}:" in output
    # Removing the tree's tail too leaves a shorter, consistent log: the head catches it.
    from store.tlog.tree import stored_hash_count

    tamper(
        log,
        ("DROP TRIGGER tree_hashes_no_delete", ()),
        ("DELETE FROM tree_hashes WHERE idx >= ?", (stored_hash_count(EVENTS - 1),)),
    )
    assert verify(log)[0] == 0
    code, output = verify(log, "--expect-head", head)
    assert code == 1 and "expected" in output


def test_backup_under_load_verifies_and_serves_the_same_timelines(tmp_path):
    original, copies = tmp_path / "live.db", [tmp_path / f"copy{i}.db" for i in range(3)]
    assets = [f"https://ik.imagekit.io/demo/v{i}.mp4" for i in range(5)]
    with serve(original) as server:
        stop = threading.Event()
        sent = []

        def write():
            with httpx.Client(base_url=server.base, timeout=10) as http:
                i = 0
                while not stop.is_set() and i < 400:
                    body = event_body(f"load-{i}", data={"asset": {"url": assets[i % 5]}})
                    assert http.post("/webhook", content=body, headers=signed(body)).is_success
                    sent.append(i)
                    i += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for copy in copies[:2]:
                while len(sent) < 20 + 40 * copies.index(copy):
                    time.sleep(0.01)
                result = invoke_cli("backup", str(copy), db=original)
                assert result.returncode == 0, result.stderr
        finally:
            stop.set()
            writer.join()
        assert invoke_cli("backup", str(copies[2]), db=original).returncode == 0

        for copy in copies:
            code, output = verify(copy)
            assert code == 0, output
            count = query_rows(copy, "SELECT count(*) FROM events")[0][0]
            assert 20 <= count <= len(sent)
            assert chain_at(copy, count) == chain_at(original, count)
        assert query_rows(copies[2], "SELECT count(*) FROM events")[0][0] == len(sent)
        served_original = answers(server.base, assets)
    with serve(copies[2]) as restored:
        assert answers(restored.base, assets) == served_original


def answers(base: str, assets: list[str]) -> dict:
    """Timelines and the event list, once the read models have caught up."""
    deadline = time.monotonic() + 60
    while True:
        health = httpx.get(f"{base}/healthz", timeout=5).json()
        rows = health.get("projections") or []  # none yet: the catch-up has not reported
        if rows and all(p["lag"] == 0 for p in rows):
            break
        assert time.monotonic() < deadline, f"the read models never caught up: {health}"
        time.sleep(0.1)
    result = {"events": httpx.get(f"{base}/events", params={"limit": 1000}).json()}
    for asset in assets:
        result[asset] = httpx.get(f"{base}/timeline", params={"asset": asset}).json()
    assert len(result["events"]["events"]) > 0
    return result
