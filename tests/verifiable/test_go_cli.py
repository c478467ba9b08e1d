"""Go's reference code checks what the CLI prints, across a prune: the auditor's view."""

from __future__ import annotations

import base64
import json

from click.testing import CliRunner

from receiver.cli import cli
from store import SQLiteStore
from store.encoding import decode_time
from store.tlog import received_ms
from tests.verifiable.logs import fill, random_events
from tests.verifiable.test_go_verifier import run_go

ORIGIN = "ikledger.test/cli-go"


def invoke(*args, env=None) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_go_accepts_the_clis_checkpoint_and_proofs_of_a_pruned_log(go_verifier, tmp_path):
    db, key = tmp_path / "log.db", tmp_path / "signing.key"
    events = random_events(300, 31)
    with SQLiteStore(db) as store:
        fill(store, events, 31)
    verifier = invoke("keys", "create", "--origin", ORIGIN, "--out", key).strip()
    env = {"IKLEDGER_SIGNING_KEY": str(key)}
    invoke("prune", "--before", decode_time(1_700_000_000_000 + 150_000), "--db", db)
    checkpoint = invoke("checkpoint", "--db", db, env=env)
    (tmp_path / "cp.note").write_text(checkpoint)
    inclusion = [
        json.loads(invoke("prove", events[i].id, "--checkpoint", tmp_path / "cp.note", "--db", db))
        for i in (0, 149, 150, 299)  # pruned and kept
    ]
    consistency = [json.loads(invoke("prove", "--from-size", 100, "--db", db, env=env))]
    document = {
        "verifier_key": verifier,
        "checkpoint": checkpoint,
        # The auditor's copies of the bodies: the log no longer holds the first 150.
        "events": [
            {
                "id": e.id,
                "type": e.type,
                "received_at_ms": received_ms(e.received_at),
                "body": base64.b64encode(e.body).decode(),
            }
            for e in events
        ],
        "inclusion": inclusion,
        "consistency": consistency,
    }
    result = run_go(go_verifier, document)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.startswith(b"ok 300 events, 4 inclusion and 1 consistency")
    with SQLiteStore(db) as store:
        assert store.get(events[0].id).pruned and not store.get(events[150].id).pruned
