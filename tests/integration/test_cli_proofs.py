"""keys, checkpoint, prove, check-proof and verify --since-checkpoint over a real log."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from receiver.checkpoints import SigningKeyError, load_signer
from receiver.cli import cli
from receiver.ingest.validation import parse_event
from store import NewEvent, SQLiteStore
from store.encoding import decode_time
from tests.support import event_body

ORIGIN = "ikledger.test/cli"


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture
def log(tmp_path):
    """A SQLite log of 40 events; yields (path, events)."""
    path = tmp_path / "log.db"
    events = [event(i) for i in range(40)]
    with SQLiteStore(path) as store:
        fill(store, events)
    return path, events


def event(i: int, **extra) -> NewEvent:
    """Event `evt-i`, its columns from its body, received at a fixed time."""
    body = event_body(f"evt-{i}", **extra)
    parsed = parse_event(body)
    received = decode_time(1_700_000_000_000 + i * 1000)
    return NewEvent(
        parsed.id, parsed.type, parsed.created_at, body, "standard-webhooks", received_at=received
    )


def fill(store, events) -> None:
    """Append in groups of 16 (a commit each), as receivers do."""
    for start in range(0, len(events), 16):
        store.append_many(events[start : start + 16])


@pytest.fixture
def key(tmp_path):
    """(key file, verifier key) made by `keys create`."""
    path = tmp_path / "signing.key"
    result = invoke("keys", "create", "--origin", ORIGIN, "--out", path)
    assert result.exit_code == 0, result.output
    return path, result.stdout.strip().splitlines()[-1]


def test_keys_create_writes_a_file_only_its_owner_reads(tmp_path, key):
    path, verifier = key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert verifier.startswith(ORIGIN + "+")
    assert verifier not in path.read_text() and "PRIVATE+KEY+" in path.read_text()
    again = invoke("keys", "create", "--origin", ORIGIN, "--out", path)
    assert again.exit_code != 0 and "never replaced" in again.output


def test_a_key_file_others_may_read_is_refused(key):
    path, _ = key
    os.chmod(path, 0o644)
    with pytest.raises(SigningKeyError, match="chmod 600") as refused:
        load_signer(path)
    assert "PRIVATE" not in str(refused.value)


def test_round_trip_keys_checkpoint_prove_check_proof(tmp_path, log, key):
    db, events = log
    key_file, verifier = key
    env = {"IKLEDGER_SIGNING_KEY": str(key_file)}
    note = invoke("checkpoint", "--db", db, env=env)
    assert note.exit_code == 0, note.output
    assert note.stdout.startswith(f"{ORIGIN}\n40\n")
    (tmp_path / "cp.note").write_text(note.stdout)
    with SQLiteStore(db) as store:
        assert store.latest_checkpoint() == note.stdout.encode()

    proved = invoke("prove", events[7].id, "--checkpoint", tmp_path / "cp.note", "--db", db)
    assert proved.exit_code == 0, proved.output
    proof = json.loads(proved.stdout)
    assert (proof["leaf_index"], proof["tree_size"]) == (7, 40)
    (tmp_path / "proof.json").write_text(proved.stdout)
    (tmp_path / "body").write_bytes(events[7].body)
    checked = invoke(
        "check-proof", tmp_path / "proof.json", "--key", verifier, "--body", tmp_path / "body"
    )
    assert checked.exit_code == 0, checked.output
    assert "ok, inclusion proof" in checked.output

    consistency = invoke("prove", "--from-size", 12, "--db", db, env=env)
    assert consistency.exit_code == 0, consistency.output
    (tmp_path / "grown.json").write_text(consistency.stdout)
    checked = invoke("check-proof", tmp_path / "grown.json", "--key", verifier)
    assert checked.exit_code == 0, checked.output
    assert "ok, consistency proof" in checked.output


def test_check_proof_names_the_check_that_fails(tmp_path, log, key):
    db, events = log
    key_file, verifier = key
    env = {"IKLEDGER_SIGNING_KEY": str(key_file)}
    proof = json.loads(invoke("prove", events[2].id, "--db", db, env=env).stdout)
    other = invoke("keys", "create", "--origin", ORIGIN, "--out", tmp_path / "k2").stdout.strip()
    tampered = dict(proof, checkpoint=proof["checkpoint"].replace("\n40\n", "\n41\n"))
    wrong_body = tmp_path / "other-body"
    wrong_body.write_bytes(events[3].body)
    cases = [
        (proof, ["--key", other], "signature"),  # a checkpoint signed by another key
        (tampered, ["--key", verifier], "signature"),  # a tampered note
        (proof, ["--key", verifier, "--body", wrong_body], "body"),
    ]
    for index, (document, options, check) in enumerate(cases):
        file = tmp_path / f"p{index}.json"
        file.write_text(json.dumps(document))
        result = invoke("check-proof", file, *options)
        assert result.exit_code == 1, (check, result.output)
        assert f"FAILED {check}:" in result.output


def test_verify_since_checkpoint_accepts_growth_and_refuses_a_fork(tmp_path, log, key):
    db, events = log
    key_file, verifier = key
    env = {"IKLEDGER_SIGNING_KEY": str(key_file)}
    with SQLiteStore(tmp_path / "fork.db") as fork:  # same key, another history of 10
        fill(fork, [event(i, extra=1) for i in range(10)])
    with SQLiteStore(tmp_path / "old.db") as old:  # the log as it was at 10 events
        fill(old, events[:10])
    for name in ("old", "fork"):
        note = invoke("checkpoint", "--db", tmp_path / f"{name}.db", env=env)
        (tmp_path / f"{name}.note").write_text(note.stdout)

    grown = invoke(
        "verify", "--since-checkpoint", tmp_path / "old.note", "--key", verifier, "--db", db
    )
    assert grown.exit_code == 0, grown.output
    assert "extends the checkpoint of 10 events" in grown.output

    forked = invoke(
        "verify", "--since-checkpoint", tmp_path / "fork.note", "--key", verifier, "--db", db
    )
    assert forked.exit_code == 1
    assert "old-checkpoint" in forked.output and "forked" in forked.output

    other_key = invoke(
        "keys", "create", "--origin", ORIGIN, "--out", tmp_path / "k2"
    ).stdout.strip()
    foreign = invoke(
        "verify", "--since-checkpoint", tmp_path / "old.note", "--key", other_key, "--db", db
    )
    assert foreign.exit_code == 1 and "old-checkpoint" in foreign.output


def test_checkpoint_without_a_key_is_unsigned_and_says_how_to_sign(log):
    db, _ = log
    result = invoke("checkpoint", "--db", db, env={"IKLEDGER_SIGNING_KEY": ""})
    assert result.exit_code == 0
    assert result.stdout.startswith("ikledger\n40\n") and "\n\n" not in result.stdout
    assert "keys create" in result.stderr


def test_status_names_the_latest_checkpoint_and_how_to_add_a_key(log, key):
    db, _ = log
    unsigned = invoke("status", "--db", db, env={"IKLEDGER_SIGNING_KEY": ""})
    assert "none kept yet" in unsigned.stdout and "keys create" in unsigned.stdout
    env = {"IKLEDGER_SIGNING_KEY": str(key[0])}
    invoke("checkpoint", "--db", db, env=env)
    signed = invoke("status", "--db", db, env=env)
    assert "40 events, signed" in signed.stdout and "keys create" not in signed.stdout
