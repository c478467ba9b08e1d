"""prune and erase from the CLI, what the API, pages and read models show afterwards,
and the daily prune of serve."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime

import falcon.testing
import pytest
from click.testing import CliRunner

import projections
from receiver import Config, create_app
from receiver.cli import cli
from receiver.ingest.validation import parse_event
from receiver.retention import Retention, RetentionError, cutoff
from store import NewEvent, SQLiteStore, StoreUnavailable
from tests.support import SECRET, event_body, table_rows

ASSET = "https://ik.imagekit.io/demo/old.mp4"
OLD = "2024-01-01T00:00:00.000Z"
NEW = cutoff("24h", datetime.now(UTC))  # received yesterday: kept by any retention here


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def event(event_id: str, received_at: str, asset: str) -> NewEvent:
    body = event_body(event_id, data={"asset": {"url": asset}})
    parsed = parse_event(body)
    return NewEvent(
        parsed.id,
        parsed.type,
        parsed.created_at,
        body,
        "standard-webhooks",
        received_at=received_at,
    )


@pytest.fixture
def log(tmp_path):
    """Six old events (one asset) then four new ones (another); read models caught up."""
    path = tmp_path / "log.db"
    with SQLiteStore(path) as store:
        store.append_many([event(f"old-{i}", OLD, ASSET) for i in range(6)])
        store.append_many([event(f"new-{i}", NEW, f"{ASSET}?v={i}") for i in range(4)])
    assert invoke("rebuild", "--db", path).exit_code == 0
    return path


@pytest.mark.parametrize(
    "text,expected",
    [
        ("90d", "2026-09-08T12:00:00.000Z"),
        ("12h", "2026-12-07T00:00:00.000Z"),
        ("2025-01-02T03:04:05Z", "2025-01-02T03:04:05.000Z"),
        ("2025-01-02", "2025-01-02T00:00:00.000Z"),
    ],
)
def test_cutoff_reads_an_age_or_a_time(text, expected):
    assert cutoff(text, datetime(2026, 12, 7, 12, tzinfo=UTC)) == expected


def test_cutoff_refuses_anything_else():
    with pytest.raises(RetentionError, match="7d"):  # the forms every command reads
        cutoff("three months", datetime.now(UTC))


def test_prune_keeps_verify_and_proofs_and_the_read_models_forget(tmp_path, log):
    key = tmp_path / "k"
    verifier = invoke("keys", "create", "--origin", "t", "--out", key).stdout.strip()
    env = {"IKLEDGER_SIGNING_KEY": str(key)}
    proof = invoke("prove", "old-2", "--db", log, env=env).stdout
    (tmp_path / "proof.json").write_text(proof)
    assert "old-2" in repr(table_rows(log.with_suffix(".projections.db")))

    pruned = invoke("prune", "--before", "2025-01-01", "--db", log)
    assert pruned.exit_code == 0 and "6 events" in pruned.output
    assert invoke("verify", "--db", log).exit_code == 0
    assert invoke("check-proof", tmp_path / "proof.json", "--key", verifier).exit_code == 0
    again = json.loads(invoke("prove", "old-2", "--db", log, env=env).stdout)
    assert again["event"]["body_sha256"] == json.loads(proof)["event"]["body_sha256"]
    shown = invoke("show", "old-2", "--db", log)
    assert shown.exit_code == 1 and "pruned on" in shown.output

    rows = repr(table_rows(log.with_suffix(".projections.db")))
    assert "old-" not in rows and all(f"new-{i}" in rows for i in range(4))


def test_erase_records_why_and_the_api_and_page_say_so(tmp_path, log):
    assert invoke("erase", "new-1", "--db", log).exit_code == 2  # --reason is required
    erased = invoke("erase", "new-1", "--reason", "GDPR request 17", "--db", log)
    assert erased.exit_code == 0, erased.output
    assert "already" in invoke("erase", "new-1", "--reason", "x", "--db", log).output
    assert invoke("verify", "--db", log).exit_code == 0
    with SQLiteStore(log) as store:
        views = projections.open_projections(store, tmp_path / "views.db")
        try:
            http = falcon.testing.TestClient(create_app(Config(secrets=(SECRET,)), store, views))
            body = http.simulate_get("/events/new-1/body")
            assert body.status_code == 410 and body.json["code"] == "body_pruned"
            assert "GDPR request 17" in body.json["description"]
            meta = http.simulate_get("/events/new-1").json
            assert meta["body"] is None and meta["pruned"]["kind"] == "erase"
            assert http.simulate_get("/events/new-2/body").status_code == 200
            page = http.simulate_get("/ui/event", params={"id": "new-1"}).text
            assert "Body pruned on" in page and "GDPR request 17" in page
        finally:
            views.close()


def test_serves_daily_prune_removes_old_bodies_and_rebuilds(log):
    rebuilt = []
    with SQLiteStore(log) as store:
        retention = Retention(store, "90d", lambda: rebuilt.append(True), every=3600)
        retention.start()
        retention.stop()  # the first pass runs at start-up, before the stop is seen
        assert store.get("old-0").pruned and not store.get("new-0").pruned
        assert rebuilt == [True] and store.erasure(1).kind == "prune"


def test_prune_takes_the_writers_turn_between_its_batches(log):
    """Each batch waits its turn with the appenders (the writers' lock file), so a long
    prune cannot keep re-taking SQLite's write lock ahead of a waiting append."""
    fd = os.open(f"{log}-writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # an appender of another process holds its turn
        with SQLiteStore(log, timeout=0.2) as store:
            with pytest.raises(StoreUnavailable, match="turn"):
                store.erase_bodies("prune", "retention", received_before=NEW)
            assert not any(e.pruned for e in store.get_positions(range(1, 11)))
    finally:
        os.close(fd)
