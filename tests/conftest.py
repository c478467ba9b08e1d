from __future__ import annotations

import pytest

from store import SQLiteStore


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "ikledger.db"


@pytest.fixture
def store(db_path):
    opened = SQLiteStore(db_path, timeout=2.0)
    yield opened
    opened.close()


# -- PostgreSQL (tests/postgres_cluster.py) ----------------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster():
    """The session's PostgreSQL server: a throwaway cluster, or IKLEDGER_TEST_POSTGRES_DSN.

    Skips with an install hint where there is none, except in CI (or with
    IKLEDGER_REQUIRE_POSTGRES=1), where a missing server fails the run.
    """
    from tests import postgres_cluster as pgc

    cluster = pgc.start_cluster()
    if isinstance(cluster, str):
        pgc.missing(cluster)
    yield cluster
    cluster.close()


@pytest.fixture
def postgres_db(postgres_cluster):
    """A fresh empty database for one test; its name. Dropped afterwards."""
    postgres_cluster.ensure_running()
    name = postgres_cluster.create_database()
    yield name
    postgres_cluster.ensure_running()
    postgres_cluster.drop_database(name)


@pytest.fixture
def postgres_url(postgres_cluster, postgres_db):
    """The fresh database as a `postgresql://` URL, password included."""
    return postgres_cluster.url(postgres_db)
