"""Connections of the SQLite backend, and the one place its driver errors are translated.

Errors are classified by SQLite's own result code (`sqlite_errorname`), never by message:

- busy, locked, full, I/O error, read-only, cannot open (and the lock protocol and
  out-of-memory codes): `StoreUnavailable`, the caller answers 503 and retries later;
- corrupt or not a database: `StoreCorrupt`, no retry will fix it;
- anything else (a SQL or constraint error, a misuse of the driver) is a bug in the
  store: a plain `StoreError`, so that no caller takes it for transient and retries it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..contract import StoreCorrupt, StoreError, StoreUnavailable
from ..sqlite_engine import sqlite3

TRANSIENT = frozenset(
    {
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
        "SQLITE_FULL",
        "SQLITE_IOERR",
        "SQLITE_READONLY",
        "SQLITE_CANTOPEN",
        "SQLITE_PROTOCOL",
        "SQLITE_NOMEM",
    }
)
CORRUPT = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


def connect(path: str, timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def primary_code(exc: sqlite3.Error) -> str | None:
    """The primary result code's name: SQLITE_IOERR for SQLITE_IOERR_WRITE; None if unset."""
    name = getattr(exc, "sqlite_errorname", None)
    return "_".join(name.split("_", 2)[:2]) if name else None


def describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)


def translate(exc: sqlite3.Error, doing: str | None = None) -> StoreError:
    """The contract's error for a driver error; `doing` prefixes the message."""
    message = f"{doing}: {describe(exc)}" if doing else describe(exc)
    code = primary_code(exc)
    if code in TRANSIENT:
        return StoreUnavailable(message)
    if code in CORRUPT:
        return StoreCorrupt(message)
    return StoreError(f"internal store error: {message}")


@contextmanager
def translated(doing: str | None = None) -> Iterator[None]:
    """Run a block of driver calls, raising only the contract's errors."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, doing) from exc
