"""Choose a backend from a location string; a backend is imported only when selected."""

from __future__ import annotations

from .contract import EventStore, StoreError
from .writer import REJECTED_KEEP


def sqlite_path(location: str) -> str | None:
    """The file of a SQLite location (a path or `sqlite:///path`); None for any other scheme."""
    scheme, sep, rest = location.partition("://")
    if not sep:
        return location
    if scheme == "sqlite":
        return rest.removeprefix("/") if rest.startswith("//") else rest
    return None


def open_store(
    location: str, *, timeout: float = 5.0, rejected_keep: int = REJECTED_KEEP
) -> EventStore:
    """Open the log at `location`: a SQLite file path, `sqlite:///path`, or `postgresql://…`.

    `postgres://` is accepted as `postgresql://`. Other schemes raise StoreError naming
    what is supported; no message repeats the location (it may hold a password).
    """
    path = sqlite_path(location)
    if path is not None:
        from .sqlite import SQLiteStore

        return SQLiteStore(path, timeout=timeout, rejected_keep=rejected_keep)
    scheme = location.partition("://")[0]
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(location, timeout=timeout, rejected_keep=rejected_keep)
    raise StoreError(
        f"unsupported database location {scheme}://…; "
        "use a SQLite file path, sqlite:///path or postgresql://…"
    )
