"""The store's records, errors and hashing: the values every backend reads and writes.

The interface that returns them, and the promises it keeps, are in `store.contract`,
which re-exports every name here (import them from `store` or `store.contract`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

GENESIS = bytes(32)
# Positions are 64-bit signed integers on every backend; a position argument outside
# 0..MAX_POSITION selects nothing (it is never an error, never a driver overflow).
MAX_POSITION = 2**63 - 1


def clamp_position(position: int) -> int:
    """`position` brought into 0..MAX_POSITION, for the backends' position arguments."""
    return min(max(position, 0), MAX_POSITION)


class Outcome(StrEnum):
    """What became of one delivery; the delivery journal records one per POST."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


# The records are named tuples: immutable, compared and hashed by value, and cheaper to
# build than frozen dataclasses (per row read, and at every start); `_replace` and
# `_asdict` give a changed copy and a dict.


class NewEvent(NamedTuple):
    """A verified, validated event as the receiver hands it to the store."""

    id: str
    type: str
    created_at: str  # normalised: UTC, ISO-8601, milliseconds, "Z"
    body: bytes  # exactly as received
    scheme: str  # "standard-webhooks" or "x-ik-signature"
    received_at: str | None = None  # set by the store unless importing
    remote_addr: str | None = None


class Event(NamedTuple):
    """One row of the log."""

    position: int
    id: str
    type: str
    created_at: str
    received_at: str
    scheme: str
    chain: bytes
    body: bytes  # b"" once pruned or erased (a received body is never empty)

    @property
    def pruned(self) -> bool:
        """True once the body was removed by a recorded prune or erasure."""
        return not self.body


class Erasure(NamedTuple):
    """The record of one body's removal: which position, when, how and why.

    The body's SHA-256 and size stay, so the chain, the tree and every proof still hold.
    """

    position: int
    erased_at: str  # UTC, ISO-8601, milliseconds, "Z"
    kind: str  # "prune" (retention) or "erase" (one event, at any age)
    reason: str
    body_sha256: bytes
    size: int


class AppendResult(NamedTuple):
    """What `append` did: stored a new event, or recognised an id already in the log."""

    outcome: Outcome
    id: str
    position: int

    @property
    def duplicate(self) -> bool:
        return self.outcome is not Outcome.STORED


class Rejection(NamedTuple):
    """A delivery that was refused; journalled without its body."""

    reason: str
    status: int
    body_sha256: bytes | None = None
    size: int | None = None
    event_id: str | None = None
    scheme: str | None = None
    remote_addr: str | None = None


class Leaf(NamedTuple):
    """The fields of one event that its Merkle tree leaf commits to (store/tlog/hashing.py)."""

    id: str
    type: str
    received_at_ms: int  # epoch milliseconds, UTC
    body_sha256: bytes


class VerifyReport(NamedTuple):
    """Result of recomputing the hash chain (and the Merkle tree) from the first event."""

    ok: bool
    events: int
    first_bad_position: int | None = None
    problem: str | None = None
    head: bytes = GENESIS


class Delivery(NamedTuple):
    """One row of the delivery journal: one POST and what became of it."""

    seq: int
    received_at: str
    outcome: str  # an Outcome value
    status: int | None
    reason: str | None
    event_id: str | None
    position: int | None
    size: int | None
    remote_addr: str | None
    scheme: str | None  # "standard-webhooks", "x-ik-signature", or None when unknown


class Conflict(NamedTuple):
    """A redelivery of an id in the log with other bytes: its journal row and its body."""

    seq: int  # the journal row (`Delivery.seq`) that recorded it
    received_at: str
    body: bytes


class Stats(NamedTuple):
    """What `stats()` reports: counts, head of the chain, size on storage."""

    events: int
    last_position: int
    head: bytes
    deliveries: dict[str, int]
    events_by_type: dict[str, int]
    size_bytes: int


class StoreError(Exception):
    """Base of every error a store raises."""


class StoreUnavailable(StoreError):
    """The store cannot make an event durable right now (locked, full, read-only).

    The caller should answer 503 so that the sender retries. Nothing was committed, or
    (a lost connection, a commit still running at the timeout) the outcome is unknown
    and the retry is recognised by id.
    """


class StoreClosed(StoreError):
    """The store was closed; no more appends are taken."""


class StoreCorrupt(StoreError):
    """The log holds something no retry will fix (a body or row it cannot read).

    Unlike StoreUnavailable this is not transient: retrying the same read fails again.
    """


def new_log_id() -> str:
    """A fresh log identity: 128 random bits as 32 hex digits."""
    from uuid import uuid4

    return uuid4().hex


def _sha256(data: bytes):
    """hashlib's sha256, imported on first use: loading OpenSSL is a few ms of every
    start, and the read commands never hash. Rebinds itself to hashlib's function."""
    global _sha256
    from hashlib import sha256 as _sha256

    return _sha256(data)


def body_digest(body: bytes) -> bytes:
    return _sha256(body).digest()


def chain_link(previous: bytes, event_id: str, digest: bytes) -> bytes:
    """The chain value of one event: SHA-256(previous chain ‖ body digest ‖ id).

    The two fixed-width fields come first, so the encoding is unambiguous.
    """
    return _sha256(previous + digest + event_id.encode("utf-8")).digest()
