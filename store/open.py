"""Choose a backend from a location string; a backend is imported only when selected."""

from __future__ import annotations

from .contract import EventStore, StoreError
from .writer import REJECTED_KEEP


def open_store(
    location: str, *, timeout: float = 5.0, rejected_keep: int = REJECTED_KEEP
) -> EventStore:
    """Open the log at `location`: a SQLite file path, `sqlite:///path`, or `postgresql://…`.

    `postgres://` is accepted as `postgresql://`. Other schemes raise StoreError naming
    what is supported; no message repeats the location (it may hold a password).
    """
    scheme, sep, rest = location.partition("://")
    if not sep or scheme == "sqlite":
        from .sqlite import SQLiteStore

        path = location if not sep else rest.removeprefix("/") if rest.startswith("//") else rest
        return SQLiteStore(path, timeout=timeout, rejected_keep=rejected_keep)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(location, timeout=timeout, rejected_keep=rejected_keep)
    raise StoreError(
        f"unsupported database location {scheme}://…; "
        "use a SQLite file path, sqlite:///path or postgresql://…"
    )
