"""Fixtures of the PostgreSQL tests: stores on the test's fresh database."""

from __future__ import annotations

import pytest


@pytest.fixture
def open_pg(postgres_url):
    """Opens PostgresStores (on the test's database unless told otherwise); closes them."""
    from store.postgres import PostgresStore

    opened = []

    def factory(url: str | None = None, *, timeout: float = 3.0, **options):
        store = PostgresStore(url or postgres_url, timeout=timeout, **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def pg_store(open_pg):
    return open_pg()


@pytest.fixture
def pg_admin(postgres_cluster, postgres_db):
    """An autocommit superuser connection to the test's database."""
    with postgres_cluster.admin(postgres_db) as conn:
        yield conn
