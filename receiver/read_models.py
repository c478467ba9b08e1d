"""Which exceptions mean "the read models cannot be read now": one answer for HTTP and CLI."""

from __future__ import annotations

import sqlite3

import projections


def read_model_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean the read models' file cannot be read right now.

    The projections package is getting a typed `ReadModelUnavailable`; until every
    caller has it, a `sqlite3.Error` escaping it means the same (the store never lets
    a driver error out, so above `store/` such an error can only be a read model's).
    """
    typed = getattr(projections, "ReadModelUnavailable", None)
    return (sqlite3.Error,) if typed is None else (typed, sqlite3.Error)
