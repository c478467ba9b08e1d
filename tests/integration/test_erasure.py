"""Retention and erasure through the store contract, on every backend."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from store import StoreError
from store.encoding import decode_time
from store.sqlite_engine import sqlite3
from store.tlog import generate_key, parse_signer
from store.tlog.proofs import check_proof, event_proof, signed_checkpoint
from tests import backends
from tests.integration.test_store_tree import raw
from tests.verifiable.logs import fill, random_events

make_store = backends.make_store
store = backends.store

ORIGIN = "ikledger.test/erasure"
START_MS = 1_700_000_000_000  # random_events: event i is received at START_MS + i s (+ <1 s)


@pytest.fixture(scope="module")
def keys():
    private, verifier = generate_key(ORIGIN)
    return parse_signer(private), verifier


@contextmanager
def plain(store):
    """A connection as anyone with the database's password has: the triggers fire."""
    if hasattr(store, "path"):
        conn = sqlite3.connect(store.path, isolation_level=None)
        try:
            yield conn.execute
        finally:
            conn.close()
        return
    import psycopg

    conn = psycopg.connect(store._target._conninfo, autocommit=True)
    try:
        yield conn.execute
    finally:
        conn.close()


def test_a_proof_from_before_a_prune_verifies_after_it(store, keys):
    events = random_events(30, 21)
    fill(store, events, 21)
    checkpoint = signed_checkpoint(store, ORIGIN, keys[0])
    before = {e.id: event_proof(store, e.id, checkpoint) for e in events[::4]}
    head = store.tree_head()

    removed = store.erase_bodies("prune", "90d", received_before=decode_time(START_MS + 10_000))
    assert removed == 10
    assert store.tree_head() == head and store.verify().ok
    for event in events[::4]:
        after = event_proof(store, event.id, checkpoint)
        assert after == before[event.id]
        check_proof(before[event.id], keys[1], body=event.body)  # the auditor's copy
        check_proof(after, keys[1])
    pruned = store.get(events[3].id)
    assert pruned.pruned and pruned.body == b""
    assert not store.get(events[10].id).pruned
    record = store.erasure(4)
    assert (record.kind, record.reason, record.size) == ("prune", "90d", len(events[3].body))
    assert store.erasure(11) is None


def test_erase_removes_one_body_once_and_records_why(store):
    events = random_events(5, 22)
    fill(store, events, 22)
    assert store.erase_bodies("erase", "GDPR request 17", position=2) == 1
    assert store.erase_bodies("erase", "again", position=2) == 0  # already gone
    assert store.get(events[1].id).pruned and not store.get(events[2].id).pruned
    assert store.erasure(2).reason == "GDPR request 17" and store.verify().ok


def test_the_database_refuses_every_other_change(store):
    fill(store, random_events(5, 23), 23)
    store.erase_bodies("erase", "test", position=3)
    refused = [
        "UPDATE events SET body = X'' WHERE position = 2",  # no erasure recorded
        "UPDATE events SET type = 'x' WHERE position = 3",  # recorded, but not the body
        "DELETE FROM events WHERE position = 3",
        "DELETE FROM erased_bodies",
        "UPDATE erasures SET reason = 'other'",
    ]
    with plain(store) as execute:
        for sql in refused:
            if not hasattr(store, "path"):
                sql = sql.replace("X''", "''::bytea")
            with pytest.raises(Exception, match="append-only"):
                execute(sql)
    assert store.verify().ok


def test_a_body_deleted_without_an_erasure_record_is_caught_by_verify(store):
    fill(store, random_events(8, 24), 24)
    store.erase_bodies("erase", "recorded", position=2)
    empty = "X''" if hasattr(store, "path") else "''::bytea"
    with raw(store) as execute:
        execute(f"UPDATE events SET body = {empty} WHERE position = 6")
    report = store.verify()
    assert not report.ok and report.first_bad_position == 6
    assert "without a recorded erasure" in report.problem


def test_an_erasure_needs_a_reason_and_one_target(store):
    for kwargs in ({}, {"position": 1, "received_before": "2024-01-01T00:00:00.000Z"}):
        with pytest.raises((ValueError, StoreError)):
            store.erase_bodies("erase", "why", **kwargs)
    with pytest.raises((ValueError, StoreError)):
        store.erase_bodies("erase", "", position=1)


def test_sqlite_reuses_the_pages_pruned_bodies_freed(tmp_path):
    from store import NewEvent, SQLiteStore

    def batch(start: int) -> list[NewEvent]:
        body = b'{"pad":"' + b"x" * 20_000 + b'"}'
        return [
            NewEvent(f"e{i}", "file.created", "2024-01-01T00:00:00.000Z", body, "x-ik-signature")
            for i in range(start, start + 100)
        ]

    path = tmp_path / "log.db"
    with SQLiteStore(path) as store:
        store.append_many(batch(0))
    full = path.stat().st_size
    with SQLiteStore(path) as store:
        assert store.erase_bodies("prune", "all", received_before="2100-01-01T00:00:00Z") == 100
        store.append_many(batch(100))  # as many bytes again, into the freed pages
        assert store.verify().ok
    assert path.stat().st_size < full * 1.2, (full, path.stat().st_size)
