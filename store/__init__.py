"""The append-only, hash-chained event log and its backends.

Backends are imported only when used: `import store` loads the contract and
`open_store`; `SQLiteStore` is loaded on first access (or by `open_store`).
"""

from .contract import (
    GENESIS,
    MAX_POSITION,
    AppendResult,
    Conflict,
    Delivery,
    Event,
    EventStore,
    Leaf,
    NewEvent,
    Outcome,
    Rejection,
    SQLiteSource,
    Stats,
    StoreClosed,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
    VerifyReport,
    body_digest,
    chain_link,
    new_log_id,
)
from .encoding import utc_now
from .open import open_store, sqlite_path

__all__ = [
    "GENESIS",
    "MAX_POSITION",
    "AppendResult",
    "Conflict",
    "Delivery",
    "Event",
    "EventStore",
    "Leaf",
    "NewEvent",
    "Outcome",
    "Rejection",
    "SQLiteSource",
    "SQLiteStore",
    "Stats",
    "StoreClosed",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "VerifyReport",
    "body_digest",
    "chain_link",
    "new_log_id",
    "open_store",
    "sqlite_path",
    "utc_now",
]


def __getattr__(name: str):
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module 'store' has no attribute {name!r}")
