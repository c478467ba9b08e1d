"""The Merkle tree through the store contract, on every backend: growth, copies, tampering."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from store import NewEvent, open_store
from store.sqlite_engine import sqlite3
from store.tlog import generate_key, parse_signer
from store.tlog.proofs import (
    ProofCheckFailed,
    check_consistency,
    check_proof,
    consistency_proof,
    event_proof,
    signed_checkpoint,
)
from tests import backends
from tests.verifiable.logs import fill, random_events

make_store = backends.make_store  # the fixtures, parametrised over every backend
store = backends.store

ORIGIN = "ikledger.test/log"


@pytest.fixture(scope="module")
def keys():
    skey, vkey = generate_key(ORIGIN)
    return parse_signer(skey), vkey


def test_empty_log_has_rfc6962s_empty_root(store):
    assert store.tree_head() == (
        0,
        bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    )
    assert store.latest_checkpoint() is None


def test_sizes_and_positions_outside_the_log_are_value_errors(store):
    fill(store, random_events(5, 1), 1)
    for call in (
        lambda: store.tree_root(6),
        lambda: store.inclusion_proof(0, 5),
        lambda: store.inclusion_proof(6, 5),
        lambda: store.consistency_proof(0, 5),
        lambda: store.consistency_proof(3, 6),
    ):
        with pytest.raises(ValueError):
            call()


def test_checkpoints_are_kept_in_order(store, keys):
    fill(store, random_events(3, 2), 2)
    first = signed_checkpoint(store, ORIGIN, keys[0])
    store.add_checkpoint(first)
    fill(store, random_events(2, 3), 3)
    second = signed_checkpoint(store, ORIGIN, keys[0])
    store.add_checkpoint(second)
    assert store.latest_checkpoint() == second != first


def test_event_and_consistency_proofs_verify_offline(store, keys):
    events = random_events(40, 4)
    fill(store, events[:25], 4)
    old = signed_checkpoint(store, ORIGIN, keys[0])
    fill(store, events[25:], 5)
    new = signed_checkpoint(store, ORIGIN, keys[0])
    proof = event_proof(store, events[7].id, old)
    check_proof(proof, keys[1], body=events[7].body)
    extension = consistency_proof(store, 25, new)
    check_consistency(old, extension, keys[1])


@pytest.mark.parametrize(
    "change,check",
    [
        (lambda p: p["event"].update(type="file.deleted"), "leaf"),
        (lambda p: p["event"].update(received_at_ms=p["event"]["received_at_ms"] + 1), "leaf"),
        (lambda p: p.update(leaf_index=p["leaf_index"] + 1), "path"),
        (lambda p: p.update(checkpoint=p["checkpoint"].replace("\n25\n", "\n26\n")), "signature"),
        (lambda p: p.update(tree_size=24), "checkpoint"),
    ],
    ids=["type", "received_at", "index", "note-altered", "size"],
)
def test_an_altered_proof_names_the_check_it_fails(store, keys, change, check):
    events = random_events(25, 6)
    fill(store, events, 6)
    proof = event_proof(store, events[10].id, signed_checkpoint(store, ORIGIN, keys[0]))
    change(proof)
    with pytest.raises(ProofCheckFailed) as failed:
        check_proof(proof, keys[1])
    assert failed.value.check == check


def test_other_bytes_a_foreign_key_and_a_forked_log_are_refused(make_store, keys):
    events = random_events(20, 7)
    log, fork = make_store(), make_store()
    fill(log, events, 7)
    fill(
        fork,
        [e._replace(type="file.deleted") if i == 3 else e for i, e in enumerate(events[:10])],
        8,
    )
    checkpoint = signed_checkpoint(log, ORIGIN, keys[0])
    proof = event_proof(log, events[3].id, checkpoint)
    with pytest.raises(ProofCheckFailed) as failed:
        check_proof(proof, keys[1], body=events[4].body)
    assert failed.value.check == "body"
    _, other_key = generate_key(ORIGIN)
    with pytest.raises(ProofCheckFailed) as failed:
        check_proof(proof, other_key)
    assert failed.value.check == "signature"
    forked_old = signed_checkpoint(fork, ORIGIN, keys[0])  # a checkpoint of a forked history
    with pytest.raises(ProofCheckFailed) as failed:
        check_consistency(forked_old, consistency_proof(log, 10, checkpoint), keys[1])
    assert failed.value.check == "old-checkpoint"


def test_backup_and_reimport_keep_the_root(make_store, tmp_path):
    source = make_store()
    fill(source, random_events(300, 9), 9)
    head = source.tree_head()
    source.backup(tmp_path / "copy.db")
    with open_store(str(tmp_path / "copy.db")) as copy:
        assert copy.tree_head() == head and copy.verify().ok
    again = make_store()  # the import path: the events re-appended with their received_at
    for batch in source.read_batches(0, batch_size=100):
        again.append_many(
            [NewEvent(e.id, e.type, e.created_at, e.body, e.scheme, e.received_at) for e in batch]
        )
    assert again.tree_head() == head


# -- tampering, behind the store's back ------------------------------------------------


@contextmanager
def raw(store):
    """A connection that bypasses the append-only triggers, as anyone with the files could."""
    if hasattr(store, "path"):
        conn = sqlite3.connect(store.path, isolation_level=None)
        for trigger in ("events_no_update", "events_no_delete", "tree_hashes_no_update"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        try:
            yield lambda sql: conn.execute(
                sql.replace("body || '\\x20'::bytea", "CAST(body || x'20' AS BLOB)")
            )
        finally:
            conn.close()
        return
    import psycopg

    conn = psycopg.connect(store._target._conninfo, autocommit=True)
    conn.execute("SET session_replication_role = replica")  # no triggers fire
    try:
        yield conn.execute
    finally:
        conn.close()


TAMPERING = {
    "body": (["UPDATE events SET body = body || '\\x20'::bytea WHERE position = 4"], 4),
    "type": (["UPDATE events SET type = 'file.deleted' WHERE position = 6"], 6),
    "received_at": (
        ["UPDATE events SET received_at = '2020-01-01T00:00:00.000Z' WHERE position = 5"],
        5,
    ),
    "removed": (["DELETE FROM events WHERE position = 6"], 6),
    "swapped": (
        [
            "UPDATE events SET position = 100 WHERE position = 8",
            "UPDATE events SET position = 8 WHERE position = 9",
            "UPDATE events SET position = 9 WHERE position = 100",
        ],
        8,
    ),
    "tree_hash": (["UPDATE tree_hashes SET hash = tree_hashes.hash WHERE idx < 0"], None),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_verify_and_proofs_catch_a_changed_log(store, keys, name):
    events = random_events(12, 10)
    fill(store, events, 10)
    checkpoint = signed_checkpoint(store, ORIGIN, keys[0])
    statements, bad = TAMPERING[name]
    if name == "tree_hash":  # the leaf hash of position 3 (stored index 3)
        statements = ["UPDATE tree_hashes SET hash = sha256(hash) WHERE idx = 3"]
        if hasattr(store, "path"):
            statements = ["UPDATE tree_hashes SET hash = zeroblob(32) WHERE idx = 3"]
        bad = 3
    with raw(store) as execute:
        for sql in statements:
            execute(sql)
    report = store.verify()
    assert not report.ok and report.first_bad_position == bad, report
    if name == "tree_hash":
        return  # the events are intact: their proofs hold, and verify named the tree
    event = events[bad - 1]
    try:
        proof = event_proof(store, event.id, checkpoint)
    except (ValueError, LookupError):
        return  # the log's tree no longer matches the checkpoint: no proof is given
    with pytest.raises(ProofCheckFailed):
        check_proof(proof, keys[1], body=store.get(event.id).body if store.get(event.id) else None)


def test_an_existing_sqlite_log_gets_its_tree_by_migration(tmp_path):
    """A log written before the tree (schema up to m007) opens with the same root."""
    from sqlite_utils import Database

    from store.sqlite import migrations

    with open_store(str(tmp_path / "new.db")) as current:
        fill(current, random_events(700, 12), 12)
        head = current.tree_head()
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrations.apply(Database(conn), stop_before="m010_merkle_tree")
    conn.execute("ATTACH DATABASE ? AS new", (str(tmp_path / "new.db"),))
    conn.execute("INSERT INTO events SELECT * FROM new.events")
    conn.execute("DETACH DATABASE new")
    assert conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'tree_hashes'"
    ).fetchone() == (0,)
    conn.close()
    with open_store(str(old)) as migrated:
        assert migrated.tree_head() == head
        assert migrated.verify().ok
    with open_store(str(old)) as again:  # applied once: opening again changes nothing
        assert again.tree_head() == head


def test_two_writers_taking_turns_on_one_file_grow_one_tree(tmp_path):
    """Each writer reuses the tree's edge only while nobody else appended since its commit."""
    path = str(tmp_path / "log.db")
    events = random_events(60, 19)
    with open_store(path) as one, open_store(path) as two:
        for n in range(0, len(events), 3):
            (one if n % 2 else two).append_many(events[n : n + 3])
        one.append_many(events[:4])  # duplicates only: the head does not move
        assert one.verify().ok
        head = one.tree_head()
    with open_store(str(tmp_path / "alone.db")) as alone:
        alone.append_many(events)
        assert alone.tree_head() == head
