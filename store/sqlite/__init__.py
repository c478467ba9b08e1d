"""The embedded SQLite backend of the event log (imported only when selected)."""

from .store import REJECTED_KEEP, TYPE_FOLD, SQLiteStore

__all__ = ["REJECTED_KEEP", "TYPE_FOLD", "SQLiteStore"]
