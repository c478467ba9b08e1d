"""The store's contract: its interface and the promises every backend keeps.

Its records and errors are in `store.records` and are re-exported here.

Every backend (SQLite, PostgreSQL) implements `EventStore` and raises only the errors
defined here, so the layers above never see a driver error and never learn which
backend they talk to: this module is the only door to the log.

Promises every backend keeps (one contract suite, `tests/integration/test_store_contract.py`,
runs over each backend and holds them):

- **Durable before return.** `append`/`append_many` return only once the event is
  committed durably (SQLite: WAL with synchronous=FULL; PostgreSQL: synchronous_commit on).
- **Gap-free positions in commit order.** Positions are 1, 2, 3, … with no hole, assigned
  inside the committing transaction, across every process appending to the same log.
- **Visibility.** Once position N is readable, every position below N is readable too:
  no commit ever makes a lower position visible later. Catch-up relies on this: a reader
  that has seen N never needs to look below N again.
- **Idempotent by id.** An id already in the log is never stored again: the same bytes
  give `DUPLICATE` with the original position, other bytes `CONFLICT` (the body kept in
  the journal, the log untouched). So a retry after an unknown outcome is always safe.
- **Bytes exactly.** `Event.body` is the body as received, byte for byte.
- **Chain.** `Event.chain` is `chain_link(previous chain, id, SHA-256(body))` from
  `GENESIS`; the same events give byte-identical chains on every backend.
- **Tree.** Every commit also grows an RFC 6962 Merkle tree over the log (leaf index =
  position - 1; leaf and storage: `store/tlog/`, `docs/verifiable-history.md`) in the
  same transaction, so the tree always covers exactly the committed events and the
  same events give byte-identical roots on every backend. Stored tree hashes never
  change: a root or proof for size N read once reads the same forever.
- **Checkpoints** (signed tree heads, as text) are kept append-only beside the log.

Definitions the backends share:

- `received_at` is the receiving process's clock (UTC, ms, "Z") when the group was
  committed, unless the caller supplied one (import).
- `Stats.size_bytes` is what the log occupies on its storage (SQLite: the file and its
  WAL; PostgreSQL: the log's tables and indexes).
- `StoreUnavailable` means the outcome is *not* success. Over a network the outcome of
  a lost connection may be unknown (the commit may have happened): the caller answers
  503, the sender retries, and the retry is recognised by id (the journal then records
  it, honestly, as a duplicate).
- `timeout` (IKLEDGER_DB_TIMEOUT) bounds every wait of one operation: connecting, a lock,
  a statement, and an append waiting for its group; past it the operation raises
  `StoreUnavailable`, never hangs. An append whose group was already committing when
  its time ran out has an unknown outcome, as over a network (SQLite gives the lock
  wait half of `timeout`, so a locked file is reported as locked).
- Errors: `StoreUnavailable` is transient (busy, locked, full, I/O, read-only, cannot
  connect, writer thread dead); `StoreCorrupt` is not (a row or file no retry will
  read); any other `StoreError` is a bug in the store, also not worth retrying.
- The group-commit writer (`store/writer.py`, `GroupWriter`) is backend neutral: a
  backend supplies only "commit this group" and gets queueing, grouping, timeouts,
  dead-writer detection (replaced by a fresh thread) and a bounded close.
- `display_name` is the log's location with any password removed: the only form of it
  that may appear in a log line, an error, `status` or `/metrics`.
- **Identity.** `log_id()` is a random id (32 hex digits) the log is given when it is
  created (a log created before identities existed is given one by migration). Nothing
  copies it: `backup` writes a file with an id of its own, and an export imported
  elsewhere lands in a log that has its own. A copy is another log, so read models
  built from one are never taken for another's (`projections/db.py`). A file copied
  behind the store's back (`cp`) keeps the id; the read models' chain check at their
  checkpoint still tells such copies apart once they differ.
- **A damaged log is loud.** A read that meets a page the backend cannot read raises
  `StoreCorrupt`, never a short or empty answer; from then on the store refuses appends
  with `StoreCorrupt` (nothing is appended after a corrupt page) and `check_writable`
  names the damage. `quick_check()` looks for damage at start-up, and
  `last_close_clean()` says whether that is worth doing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from .records import (
    GENESIS,
    MAX_POSITION,
    AppendResult,
    Conflict,
    Delivery,
    Erasure,
    Event,
    Leaf,
    NewEvent,
    Outcome,
    Rejection,
    Stats,
    StoreClosed,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
    VerifyReport,
    body_digest,
    chain_link,
    clamp_position,
    new_log_id,
)

if TYPE_CHECKING:
    from .forwarding import ForwardingState
    from .sqlite_engine import sqlite3

__all__ = [
    "GENESIS",
    "MAX_POSITION",
    "AppendResult",
    "Conflict",
    "Delivery",
    "Erasure",
    "Event",
    "EventStore",
    "Leaf",
    "NewEvent",
    "Outcome",
    "Rejection",
    "SQLiteSource",
    "Stats",
    "StoreClosed",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "VerifyReport",
    "body_digest",
    "chain_link",
    "clamp_position",
    "new_log_id",
]


class EventStore(Protocol):
    """The append-only event log every backend provides (promises: module docstring)."""

    display_name: str

    # -- writing ------------------------------------------------------------------

    def append(self, event: NewEvent) -> AppendResult:
        """Append one event durably, or recognise its id; returns once committed."""
        ...

    def append_many(self, events: Sequence[NewEvent]) -> list[AppendResult]:
        """Append several events in one durable transaction, in order.

        Raises StoreUnavailable when they could not be committed in `timeout`; then
        none of them is stored, or (over a network, or a commit still running when the
        time ran out) the outcome is unknown and a retry is recognised by id.
        """
        ...

    def record_rejection(self, rejection: Rejection) -> None:
        """Journal a refused delivery; best effort, never blocks on durability."""
        ...

    def check_writable(self) -> str | None:
        """Why an append would fail now (disk full, read-only, locked, writer dead,
        damage seen), or None."""
        ...

    # -- reading ------------------------------------------------------------------

    def read_batches(
        self,
        after: int = 0,
        *,
        batch_size: int = 1000,
        types: Sequence[str] | None = None,
        until: int | None = None,
        created_since: str | None = None,
        created_until: str | None = None,
    ) -> Iterator[list[Event]]:
        """Events with position > after (and <= until), in position order, in batches.

        `created_since` / `created_until` keep the events whose `created_at` is in that
        inclusive range (normalised times, compared as text). Filtered in the database
        through an index on `created_at`: a range that holds nothing reads no event, and
        only the events returned are read whole (bodies included).
        """
        ...

    def get(self, event_id: str) -> Event | None:
        """The event with this id, or None."""
        ...

    def get_positions(self, positions: Sequence[int]) -> list[Event]:
        """The events at these positions, in position order (missing ones skipped)."""
        ...

    def last_position(self) -> int:
        """The newest readable position; 0 when the log is empty."""
        ...

    def wait(self, after: int, timeout: float) -> int:
        """Block until a position above `after` is readable or `timeout` passes.

        Returns `last_position()` (which may still be `after`). A backend may wake on
        a notification (PostgreSQL's LISTEN) or poll; it never sleeps past `timeout`.
        """
        ...

    def deliveries(self, *, event_id: str | None = None, limit: int = 100) -> list[Delivery]:
        """Journal rows, newest first: all of them, or those of one event id.

        For an id in the log: every delivery of it (stored, duplicate, conflict) and
        the refusals that named it. Costs what it returns, not the journal's size.
        """
        ...

    def rejections(
        self, since: str | None = None, until: str | None = None, *, limit: int = 100
    ) -> list[Delivery]:
        """Refused deliveries received in [since, until), newest first, at most `limit`.

        `since` and `until` are normalised times (UTC, ms, "Z"); None is unbounded.
        Only the refusals the journal keeps (the newest `rejected_keep`) are found.
        Costs what it returns (an index on the refusals' time), not the journal's size.
        """
        ...

    def rejection_counts(
        self, since: str | None = None, until: str | None = None
    ) -> dict[str, int]:
        """Refused deliveries received in [since, until), counted by reason code.

        Over the refusals the journal keeps; {} when there are none. Costs the refusals
        in the range (read from an index), not the journal's size.
        """
        ...

    def conflicts(self, event_id: str) -> list[Conflict]:
        """The bodies redelivered under `event_id` that differ from the stored one, oldest
        first; [] for an id with none, or not in the log. The journal keeps them; the
        log never changes."""
        ...

    def type_counts(self) -> dict[str, int]:
        """Events in the log by type, without scanning the log."""
        ...

    def verify(self) -> VerifyReport:
        """Recompute the chain and the tree from GENESIS; name the first bad position."""
        ...

    # -- the Merkle tree and its checkpoints -----------------------------------------

    def tree_head(self) -> tuple[int, bytes]:
        """(size, root) of the tree over every committed event: one consistent pair.

        The empty log gives (0, SHA-256 of nothing), as RFC 6962 defines it.
        """
        ...

    def tree_root(self, size: int) -> bytes:
        """The root of the tree of the first `size` events; ValueError past the head."""
        ...

    def inclusion_proof(self, position: int, tree_size: int) -> list[bytes]:
        """The RFC 6962 audit path of the event at `position` in the tree of `tree_size`.

        Leaf to root. ValueError unless 1 <= position <= tree_size <= the head.
        """
        ...

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 6962 consistency proof from the tree of `old_size` to that of `new_size`.

        ValueError unless 1 <= old_size <= new_size <= the head.
        """
        ...

    def leaf(self, position: int) -> Leaf | None:
        """The fields the leaf at `position` commits to, read from the event; None if absent."""
        ...

    def add_checkpoint(self, text: bytes) -> None:
        """Keep one checkpoint (a signed note, as bytes), append-only, durably."""
        ...

    def latest_checkpoint(self) -> bytes | None:
        """The checkpoint added last, or None when there is none."""
        ...

    # -- retention and erasure ------------------------------------------------------

    def erase_bodies(
        self,
        kind: str,
        reason: str,
        *,
        position: int | None = None,
        received_before: str | None = None,
    ) -> int:
        """Remove bodies, recording each removal (append-only): one position, or every
        event received before a time (ISO-8601). Returns how many bodies went.

        The erasure (when, `kind`, `reason`) and each body's SHA-256 and size are kept
        in the same transaction as its removal, so no body goes unrecorded; the
        database refuses any other change to an event. Long prunes commit in batches
        and never hold back appends for long. Bodies already gone are skipped.
        """
        ...

    def erasure(self, position: int) -> Erasure | None:
        """The recorded removal of the body at `position`, or None."""
        ...

    def stats(self) -> Stats:
        """Counts, head and size; cheap enough for every `/metrics` scrape."""
        ...

    # -- identity and health ------------------------------------------------------

    def log_id(self) -> str:
        """This log's identity: given at creation, never copied (see the module docstring)."""
        ...

    def quick_check(self) -> str | None:
        """Look for damage in the log's storage; what was found, or None when none was.

        Cheap enough for a start-up (SQLite: `PRAGMA quick_check`, linear in the file's
        size, no index cross-check). Finding damage has the effect of a corrupt read:
        appends are refused with StoreCorrupt from then on.
        """
        ...

    def last_close_clean(self) -> bool:
        """Whether everyone who used the log before this store closed it cleanly.

        False when a previous process ended without `close()` (a crash, a kill): the
        caller may then run `quick_check`. True when the backend cannot tell or a
        crash cannot damage its storage (PostgreSQL recovers on its own).
        """
        ...

    # -- copies -------------------------------------------------------------------

    def backup(self, path: str) -> int:
        """Write a consistent snapshot of the log as a SQLite log file at `path`.

        Any backend writes the same thing: a file `open_store(path)` opens, whose
        `verify()` passes with the same head and whose `log_id()` is a new one (the
        copy is another log). Returns its event count.
        """
        ...

    # -- forwarding ---------------------------------------------------------------

    def forwarding(self, *, durable: bool = True) -> ForwardingState:
        """The forwarding state kept beside this log (store/forwarding.py).

        `durable=False` is for the forwarder's own bookkeeping (queued deliveries,
        attempts, outcomes, leases): its commits may become durable only with the log's
        next durable commit or checkpoint, so a power cut (not a crash of the process)
        may undo the latest of them, which at least once allows (a delivery marked
        again pending is sent again). SQLite: `synchronous=NORMAL` on its connections;
        PostgreSQL: the same durable commits as ever.
        """
        ...

    def close(self) -> None: ...


class SQLiteSource(Protocol):
    """Optional bulk capability of a store: its events readable from a SQLite connection.

    The rebuild's fast path uses it when a store offers `sqlite_source`; every other
    store is read through `read_batches` into a local staging table of the same shape.
    """

    def sqlite_source(self, conn: sqlite3.Connection, schema: str) -> str:
        """Make the log readable from `conn` under `schema`; returns a relation name.

        The relation has the columns `position, id, type, created_at, body` (the
        logical values of `Event`), is read only, and follows the visibility promise.
        """
        ...
