"""The store's contract: its records, its interface and its errors.

Every backend (SQLite now, PostgreSQL later) implements `EventStore` and raises
only the errors defined here, so the layers above never see a driver error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

GENESIS = bytes(32)


class Outcome(StrEnum):
    """What became of one delivery; the delivery journal records one per POST."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A verified, validated event as the receiver hands it to the store."""

    id: str
    type: str
    created_at: str  # normalised: UTC, ISO-8601, milliseconds, "Z"
    body: bytes  # exactly as received
    scheme: str  # "standard-webhooks" or "x-ik-signature"
    received_at: str | None = None  # set by the store unless importing
    remote_addr: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the log."""

    position: int
    id: str
    type: str
    created_at: str
    received_at: str
    scheme: str
    chain: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What `append` did: stored a new event, or recognised an id already in the log."""

    outcome: Outcome
    id: str
    position: int

    @property
    def duplicate(self) -> bool:
        return self.outcome is not Outcome.STORED


@dataclass(frozen=True, slots=True)
class Rejection:
    """A delivery that was refused; journalled without its body."""

    reason: str
    status: int
    body_sha256: bytes | None = None
    size: int | None = None
    event_id: str | None = None
    scheme: str | None = None
    remote_addr: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of recomputing the hash chain from the first event."""

    ok: bool
    events: int
    first_bad_position: int | None = None
    problem: str | None = None
    head: bytes = GENESIS


@dataclass(frozen=True, slots=True)
class Stats:
    events: int
    last_position: int
    head: bytes
    deliveries: dict[str, int] = field(default_factory=dict)
    events_by_type: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0


class StoreError(Exception):
    """Base of every error a store raises."""


class StoreUnavailable(StoreError):
    """The store cannot make an event durable right now (locked, full, read-only).

    The caller should answer 503 so that the sender retries; nothing was committed.
    """


class StoreClosed(StoreError):
    """The store was closed; no more appends are taken."""


def body_digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def chain_link(previous: bytes, event_id: str, digest: bytes) -> bytes:
    """The chain value of one event: SHA-256(previous chain ‖ body digest ‖ id).

    The two fixed-width fields come first, so the encoding is unambiguous.
    """
    return hashlib.sha256(previous + digest + event_id.encode("utf-8")).digest()


class EventStore(Protocol):
    """The append-only event log every backend provides."""

    def append(self, event: NewEvent) -> AppendResult:
        """Append one event durably, or recognise its id; returns once committed."""
        ...

    def append_many(self, events: Sequence[NewEvent]) -> list[AppendResult]:
        """Append several events in one durable transaction, in order."""
        ...

    def record_rejection(self, rejection: Rejection) -> None:
        """Journal a refused delivery; best effort, never blocks on durability."""
        ...

    def check_writable(self) -> str | None:
        """Why an append would fail now (disk full, read-only, locked), or None."""
        ...

    def read_batches(
        self,
        after: int = 0,
        *,
        batch_size: int = 1000,
        types: Sequence[str] | None = None,
        until: int | None = None,
    ) -> Iterator[list[Event]]:
        """Events with position > after (and <= until), in position order, in batches."""
        ...

    def get(self, event_id: str) -> Event | None: ...

    def get_positions(self, positions: Sequence[int]) -> list[Event]: ...

    def last_position(self) -> int: ...

    def verify(self) -> VerifyReport: ...

    def stats(self) -> Stats: ...

    def backup(self, path: str) -> int:
        """Write a consistent copy of the log to `path`; returns its event count."""
        ...

    def close(self) -> None: ...
