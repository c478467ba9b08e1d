"""The append-only, hash-chained event log and its backends."""

from .contract import (
    GENESIS,
    AppendResult,
    Event,
    EventStore,
    NewEvent,
    Outcome,
    Rejection,
    Stats,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    VerifyReport,
    body_digest,
    chain_link,
)
from .open import open_store
from .sqlite import SQLiteStore, utc_now

__all__ = [
    "GENESIS",
    "AppendResult",
    "Event",
    "EventStore",
    "NewEvent",
    "Outcome",
    "Rejection",
    "SQLiteStore",
    "Stats",
    "StoreClosed",
    "StoreError",
    "StoreUnavailable",
    "VerifyReport",
    "body_digest",
    "chain_link",
    "open_store",
    "utc_now",
]
