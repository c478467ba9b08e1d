"""SQLite's bulk `verify`: it passes exactly the logs the row-by-row check passes."""

from __future__ import annotations

import pytest

from store.encoding import decode_time
from store.sqlite.bulk_verify import _stored_order, bulk_verify
from store.sqlite_engine import sqlite3
from store.tlog.tree import stored_hash_count, stored_hash_index
from store.verify import verify_chain
from tests.verifiable.logs import fill, random_events

EVENTS = 300  # with batches of 8 positions: many batches, tree levels above a batch
BLOCK_LEVEL = 3


def row_by_row(store):
    """The check every backend runs (store/verify.py), over the same SQLite file."""
    rows = (
        "SELECT e.position, e.id, e.chain, e.body, e.type, e.received_at, x.body_sha256 "
        "FROM events AS e LEFT JOIN erased_bodies AS x ON x.position = e.position "
        "WHERE e.position > ? ORDER BY e.position LIMIT ?"
    )
    tree = "SELECT idx, hash FROM tree_hashes WHERE idx >= ? AND idx < ? ORDER BY idx"
    return verify_chain(
        lambda after, limit: store._query(rows, (after, limit)),
        tree=lambda lo, hi: store._query(tree, (lo, hi)),
    )


@pytest.fixture
def log(store):
    fill(store, random_events(EVENTS, 31), 31)
    store.erase_bodies("prune", "test", received_before=decode_time(1_700_000_040_000))
    store.erase_bodies("erase", "test", position=200)
    return store


@pytest.mark.parametrize("block_level", [BLOCK_LEVEL, 14])
def test_an_intact_log_with_removed_bodies_passes_in_bulk(log, block_level):
    report = bulk_verify(log._query, block_level=block_level)
    assert report is not None and report.ok
    assert report == row_by_row(log) == log.verify()
    assert report.events == EVENTS


def test_two_processes_check_an_intact_log_as_one_does(log, db_path):
    report = bulk_verify(log._query, block_level=BLOCK_LEVEL, path=str(db_path), parallel_from=0)
    assert report is not None and report == row_by_row(log)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 13, 300, 1024, 2047])
def test_a_batchs_nodes_are_compared_in_the_order_they_are_stored(count):
    nodes = [(level, j) for level in range(count.bit_length()) for j in range(count >> level)]
    by_index = sorted(range(len(nodes)), key=lambda i: stored_hash_index(*nodes[i]))
    assert _stored_order(count) == by_index
    assert len(by_index) == stored_hash_count(count)


def test_an_empty_log_passes_in_bulk(store):
    assert bulk_verify(store._query, block_level=BLOCK_LEVEL) == row_by_row(store)


def tamper(path, *statements) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for trigger in ("events_no_update", "events_no_delete", "tree_hashes_no_update"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for sql in statements:
            conn.execute(sql)
    finally:
        conn.close()


CHANGES = {
    "body": "UPDATE events SET body = CAST(body || x'20' AS BLOB) WHERE position = 77",
    "body_text": "UPDATE events SET body = CAST(body AS TEXT) WHERE position = 77",
    "body_emptied": "UPDATE events SET body = X'' WHERE position = 150",
    "id": "UPDATE events SET id = 'other' WHERE position = 99",
    "chain": "UPDATE events SET chain = zeroblob(32) WHERE position = 120",
    "type": "UPDATE events SET type = 'file.deleted' || type WHERE position = 133",
    "received_at": "UPDATE events SET received_at = received_at + 1 WHERE position = 34",
    "received_at_text": (
        "UPDATE events SET received_at = '2023-11-14T22:13:20.000Z' WHERE position = 1"
    ),
    "id_blob": "UPDATE events SET id = CAST(id AS BLOB) WHERE position = 45",
    "type_blob": "UPDATE events SET type = CAST(type AS BLOB) WHERE position = 46",
    "type_too_long": "UPDATE events SET type = type || hex(zeroblob(33000)) WHERE position = 47",
    "received_at_negative": "UPDATE events SET received_at = -1 WHERE position = 10",
    "removed": "DELETE FROM events WHERE position = 64",
    "removed_mid_batch": "DELETE FROM events WHERE position = 61",
    "removed_last": "DELETE FROM events WHERE position = 300",
    "leaf_hash": "UPDATE tree_hashes SET hash = zeroblob(32) WHERE idx = 40",
    "high_hash": "UPDATE tree_hashes SET hash = zeroblob(32) WHERE idx = 510",  # level 8
    "hash_beyond": "INSERT INTO tree_hashes (idx, hash) VALUES (596, zeroblob(32))",  # position 301
    "event_beyond": (
        "INSERT INTO events (position, id, type, created_at, received_at, scheme, chain, body)"
        " SELECT 301, 'extra', type, created_at, received_at, scheme, chain, body"
        " FROM events WHERE position = 300"
    ),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_a_changed_log_fails_in_bulk_and_verify_names_it_row_by_row(log, db_path, name):
    tamper(db_path, CHANGES[name])
    assert bulk_verify(log._query, block_level=BLOCK_LEVEL) is None
    expected = row_by_row(log)
    assert not expected.ok
    assert log.verify() == expected


@pytest.mark.parametrize("name", ["body", "body_emptied", "high_hash"])
def test_a_changed_log_fails_in_two_processes(log, db_path, name):
    """A change before the split (position 144 of 300), after it, and in the tree above
    both halves' batches."""
    tamper(db_path, CHANGES[name])
    in_two = bulk_verify(log._query, block_level=BLOCK_LEVEL, path=str(db_path), parallel_from=0)
    assert in_two is None
