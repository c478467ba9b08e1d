"""Which exceptions mean "the read models cannot be read now": one answer for HTTP and CLI."""

from __future__ import annotations

from projections import ReadModelUnavailable
from store.sqlite_engine import sqlite3


def read_model_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean the read models' file cannot be read right now.

    The projections package translates its SQLite errors into `ReadModelUnavailable`;
    a `sqlite3.Error` that still escapes it (a query function that reads outside
    `db.read()`) means the same: the store never lets a driver error out, so above
    `store/` such an error can only be a read model's.
    """
    return (ReadModelUnavailable, sqlite3.Error)
