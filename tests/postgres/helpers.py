"""Helpers of the PostgreSQL fault tests: appends held open, waits on the server's state."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from store import NewEvent
from store.postgres.append import APPEND, append_params


def call_append(conn: psycopg.Connection, events: list[NewEvent]) -> tuple[list, list]:
    """Call the append function on `conn` (inside whatever transaction it has open)."""
    return conn.execute(APPEND, append_params(events)).fetchone()


def eventually(check: Callable[[], object], *, timeout: float = 15.0, what: str = "") -> object:
    """Poll `check` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)


def waiting_backends(admin: psycopg.Connection, dbname: str, wait_event: str) -> list[int]:
    """Pids of the backends of `dbname` waiting on `wait_event` (e.g. 'transactionid')."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
        "(wait_event_type = %s OR wait_event = %s) AND pid <> pg_backend_pid()",
        (dbname, wait_event, wait_event),
    ).fetchall()
    return [row[0] for row in rows]


def positions(store) -> list[int]:
    return [e.position for batch in store.read_batches(0, batch_size=500) for e in batch]
