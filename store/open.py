"""Choose a backend from a location string."""

from __future__ import annotations

from .contract import EventStore, StoreError
from .sqlite import REJECTED_KEEP, SQLiteStore


def open_store(
    location: str, *, timeout: float = 5.0, rejected_keep: int = REJECTED_KEEP
) -> EventStore:
    """Open the log at `location`: a SQLite file path, or `sqlite:///path`.

    Other schemes (a future `postgresql://`) raise StoreError naming what is supported.
    """
    if "://" not in location:
        return SQLiteStore(location, timeout=timeout, rejected_keep=rejected_keep)
    scheme, _, rest = location.partition("://")
    if scheme == "sqlite":
        return SQLiteStore(
            rest.removeprefix("/") if rest.startswith("//") else rest,
            timeout=timeout,
            rejected_keep=rejected_keep,
        )
    raise StoreError(f"unsupported database location {scheme}://…; use a SQLite file path")
