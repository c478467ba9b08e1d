"""Go's reference code (sumdb/note, sumdb/tlog) checks our leaves, roots, proofs and checkpoints."""

from __future__ import annotations

import base64
import json
import random
import subprocess

import pytest

from store.tlog import generate_key, leaf_hash, parse_signer, received_ms
from store.tlog.proofs import consistency_proof, event_proof, signed_checkpoint
from tests import backends
from tests.verifiable.logs import fill, random_events

make_store = backends.make_store  # the fixtures, parametrised over every backend
store = backends.store

ORIGIN = "ikledger.test/log"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def go_input(store, seed: int) -> dict:
    """Everything the Go verifier needs: the key, a checkpoint, the events and proofs."""
    rng = random.Random(seed)
    skey, vkey = generate_key(ORIGIN)
    checkpoint = signed_checkpoint(store, ORIGIN, parse_signer(skey))
    size, _ = store.tree_head()
    events = [
        {
            "id": e.id,
            "type": e.type,
            "received_at_ms": received_ms(e.received_at),
            "body": _b64(e.body),
        }
        for batch in store.read_batches(0, batch_size=5000)
        for e in batch
    ]
    inclusion = []
    for _ in range(30):
        tree_size = rng.randint(1, size)
        position = rng.randint(1, tree_size)
        inclusion.append(
            {
                "leaf_index": position - 1,
                "leaf_hash": None,  # filled below from the store's own leaf
                "tree_size": tree_size,
                "root": _b64(store.tree_root(tree_size)),
                "path": [_b64(h) for h in store.inclusion_proof(position, tree_size)],
            }
        )
    for proof in inclusion:
        proof["leaf_hash"] = _b64(leaf_hash(store.leaf(proof["leaf_index"] + 1)))
    # The JSON an auditor is handed, as is: one event proof, one consistency proof.
    picked = events[rng.randrange(size)]["id"]
    inclusion.append(event_proof(store, picked, checkpoint))
    consistency = [consistency_proof(store, rng.randint(1, size), checkpoint)]
    for _ in range(30):
        new = rng.randint(1, size)
        old = rng.randint(1, new)
        consistency.append(
            {
                "old_size": old,
                "old_root": _b64(store.tree_root(old)),
                "tree_size": new,
                "root": _b64(store.tree_root(new)),
                "path": [_b64(h) for h in store.consistency_proof(old, new)],
            }
        )
    return {
        "verifier_key": vkey,
        "checkpoint": checkpoint.decode(),
        "events": events,
        "inclusion": inclusion,
        "consistency": consistency,
    }


def run_go(binary, document: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(binary)],
        input=json.dumps(document).encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("count,seed", [(1, 1), (2, 2), (7, 3), (256, 4), (1000, 5), (10_000, 6)])
def test_go_reference_code_accepts_our_tree_and_proofs(go_verifier, store, count, seed):
    fill(store, random_events(count, seed), seed)
    result = run_go(go_verifier, go_input(store, seed))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.startswith(f"ok {count} events".encode())


def test_go_reference_code_refuses_a_changed_leaf_or_path(go_verifier, store):
    """The harness can fail: one altered field, one altered path hash, each refused."""
    fill(store, random_events(50, 7), 7)
    document = go_input(store, 7)
    document["events"][9]["type"] = "file.deleted.x"
    assert b"FAIL" in run_go(go_verifier, document).stdout
    document = go_input(store, 7)
    path = document["consistency"][1]["path"]
    if path:
        path[0] = _b64(bytes(32))
        assert b"FAIL" in run_go(go_verifier, document).stdout


def test_same_events_give_the_same_root_on_both_backends(request, tmp_path):
    """Byte-identical roots (and so proofs) for the same events on every backend."""
    events = random_events(600, 11)
    heads = {}
    for name, backend in sorted(backends.BACKENDS.items()):
        services = {need: request.getfixturevalue(need) for need in backend.needs}
        folder = tmp_path / name
        folder.mkdir()
        with backend.factory(folder, **services) as opened:
            fill(opened, events, 11)
            heads[name] = [opened.tree_root(size) for size in (1, 2, 3, 17, 256, 599, 600)]
    assert len(set(map(tuple, heads.values()))) == 1, heads
