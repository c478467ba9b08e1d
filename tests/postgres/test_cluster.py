"""The throwaway cluster the PostgreSQL tests run on is durable and isolated per test."""

from __future__ import annotations

import psycopg
import pytest


def test_cluster_runs_with_fsync_and_synchronous_commit_on(postgres_cluster, postgres_db):
    with postgres_cluster.admin(postgres_db) as conn:
        settings = conn.execute(
            "SELECT current_setting('fsync'), current_setting('synchronous_commit'),"
            " current_setting('listen_addresses')"
        ).fetchone()
    assert settings[:2] == ("on", "on")
    if postgres_cluster.controllable:
        assert settings[2] == "127.0.0.1"


def test_each_test_gets_an_empty_database(postgres_cluster, postgres_db):
    with postgres_cluster.admin(postgres_db) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchone()[0]
    assert tables == 0


def test_cluster_survives_a_crash_and_restart(postgres_cluster, postgres_db):
    postgres_cluster.require_control()
    with postgres_cluster.admin(postgres_db) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (1)")
    postgres_cluster.stop("immediate")
    with pytest.raises(psycopg.OperationalError), postgres_cluster.admin(postgres_db):
        pass
    postgres_cluster.start()
    with postgres_cluster.admin(postgres_db) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]


def test_missing_server_skips_with_the_install_hint_and_fails_in_ci(monkeypatch):
    from tests import postgres_cluster as pgc

    monkeypatch.delenv("IKLEDGER_TEST_POSTGRES_DSN", raising=False)
    monkeypatch.setattr(pgc, "find_binaries", lambda: None)
    reason = pgc.start_cluster()
    assert reason == pgc.INSTALL_HINT and "apt-get install postgresql" in reason
    for variable, value, outcome in (
        ("CI", "false", pytest.skip.Exception),
        ("CI", "true", pytest.fail.Exception),
        ("IKLEDGER_REQUIRE_POSTGRES", "1", pytest.fail.Exception),
    ):
        monkeypatch.delenv("CI", raising=False)
        monkeypatch.delenv("IKLEDGER_REQUIRE_POSTGRES", raising=False)
        monkeypatch.setenv(variable, value)
        with pytest.raises(outcome, match="PostgreSQL server not found"):
            pgc.missing(reason)
