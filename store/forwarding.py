"""The forwarding state's contract: destinations, their deliveries, attempts, replays, leases.

Forwarding (the `forwarding` package) delivers the log's events to the user's own
endpoints. Its state must be shared by every receiver of one log, so it lives in the
log's database beside the events, mutable and outside the chain; every backend offers
it as `store.forwarding()`, an object implementing `ForwardingState`, and raises only
the store's errors (`store.records`, re-exported by `store.contract`) plus the two below.

Promises every backend keeps (held by `tests/integration/test_forwarding_state.py`,
parametrised over every backend):

- **One row per (destination, position).** An event is queued for a destination at most
  once; `enqueue` of a queued event changes nothing unless it is a replay, which puts a
  delivered or failed event back to `pending` (attempts from 1 again).
- **Cursor only forward, with its events.** `enqueue(..., cursor=N)` stores the items and
  moves the cursor to N in one transaction, never backwards: a crash between "read the
  log" and "queued" queues the events again, never loses or doubles them.
- **An attempt is recorded with its outcome.** `record_attempt` journals the attempt and
  sets the delivery's state, attempt count and next time in one transaction
  (`record_attempts` does so for a group of attempts, all in one transaction); for a
  delivery that is no longer there (destination removed) it does nothing.
- **The journal is capped.** Past `attempts_keep` rows, the oldest attempts of delivered
  events go first; attempts of pending or failed events are kept.
- **One holder per lease.** `acquire_lease` succeeds for one holder at a time, until it
  releases or its lease expires (`ttl` seconds after its last renewal, by the database's
  clock on PostgreSQL, the machine's on SQLite).
- Times are integer milliseconds since the Unix epoch, UTC.
- A destination's secret is stored as given and appears in no repr of these records.
- **Durable unless asked otherwise.** `store.forwarding()` commits durably like the log;
  `store.forwarding(durable=False)`, the forwarder's own, may leave its latest commits to
  become durable with the log's next one (`EventStore.forwarding`): a crash of the
  process loses none of them, a power cut may undo the latest, whole and in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit, urlunsplit

from .records import StoreError

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
STATES = (PENDING, DELIVERED, FAILED)

SCHEDULED = "scheduled"
REPLAY = "replay"

ATTEMPTS_KEEP = 100_000  # journal rows kept before attempts of delivered events go


class UnknownDestination(StoreError):
    """No destination has this name."""


class DestinationExists(StoreError):
    """A destination with this name is already configured."""


def strip_credentials(url: str) -> str:
    """`url` without a user or password, the only form of it that may be shown."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Destination:
    """One configured endpoint and how to deliver to it.

    `schedule_ms` are the delays before the retries (its length + 1 attempts in all);
    `cursor` is the last log position turned into deliveries; `rate` is attempts per
    second (None: unlimited). The repr shows neither the secret nor URL credentials.
    """

    name: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    types: tuple[str, ...] = ()  # shell patterns; empty: every type
    timeout: float = 30.0
    max_in_flight: int = 8
    rate: float | None = None
    schedule_ms: tuple[int, ...] = ()
    unordered: bool = False
    paused: bool = False
    pause_reason: str | None = None
    created_ms: int = 0
    cursor: int = 0
    last_success_ms: int | None = None
    last_failure_ms: int | None = None
    last_failure: str | None = None

    @property
    def display_url(self) -> str:
        return strip_credentials(self.url)

    def __repr__(self) -> str:
        return (
            f"Destination(name={self.name!r}, url={self.display_url!r}, "
            f"paused={self.paused!r}, cursor={self.cursor!r})"
        )


class Queued(NamedTuple):
    """An event to queue for a destination, with its ordering key."""

    position: int
    event_id: str
    key: str


class Item(NamedTuple):
    """One event queued for one destination, and where its delivery stands."""

    destination: str
    position: int
    event_id: str
    key: str
    state: str  # PENDING, DELIVERED or FAILED
    attempts: int  # attempts made so far (since the last replay)
    next_ms: int  # when the next attempt is due (pending only)
    replay_job: int | None


class PendingWindow(NamedTuple):
    """The pending deliveries a forwarder with order per key holds (`pending_by_key`)."""

    items: list[Item]  # in position order
    more: bool  # some pending delivery is not among `items`
    per_key: int  # a key's share: how many of it a new event may join up to
    open_keys: frozenset[str]  # keys with pending deliveries not among `items`
    # Every key with a pending delivery has one among `items` (or is in `open_keys`):
    # an event of any other key is its key's oldest pending delivery.
    every_key: bool


class Attempt(NamedTuple):
    """One journalled attempt: what was sent when, and what came back."""

    destination: str
    position: int
    event_id: str
    number: int  # 1, 2, … since the event was (re)queued
    kind: str  # SCHEDULED or REPLAY
    replay_job: int | None
    started_ms: int
    duration_ms: int
    status: int | None  # the HTTP status, or None when no answer came
    error: str | None  # an error class (`timeout`, `connection_refused`, …) or None
    response: bytes  # the answer's first 2 KB
    next_ms: int | None  # when the next attempt is due, None when none follows
    seq: int = 0  # the journal's order; set by the store


class ReplayJob(NamedTuple):
    """A durable replay: what it selected, how many it queued, at which rate."""

    id: int
    destination: str
    created_ms: int
    selection: str  # JSON of the selection, as given
    rate: float | None
    queued: int


class ForwardingState(Protocol):
    """The forwarding state of one log (promises: module docstring)."""

    # -- destinations ---------------------------------------------------------------

    def add_destination(self, destination: Destination) -> None:
        """Store a new destination; DestinationExists if the name is taken."""
        ...

    def destination(self, name: str) -> Destination | None: ...

    def destinations(self) -> list[Destination]:
        """Every destination, by name."""
        ...

    def set_paused(self, name: str, paused: bool, reason: str | None = None) -> None:
        """Pause (with a reason) or resume; UnknownDestination if there is none."""
        ...

    def remove_destination(self, name: str) -> None:
        """Remove the destination with its deliveries, attempts, replays and lease."""
        ...

    # -- deliveries -----------------------------------------------------------------

    def enqueue(
        self,
        name: str,
        items: Sequence[Queued],
        *,
        due_ms: int,
        cursor: int | None = None,
        replay_job: int | None = None,
    ) -> int:
        """Queue events as pending, due at `due_ms`; returns how many became pending.

        Moves the cursor forward to `cursor` in the same transaction. With
        `replay_job`, delivered and failed events are queued again for that job.
        """
        ...

    def requeue_failed(self, name: str, *, replay_job: int, due_ms: int) -> int:
        """Put every failed event of the destination back to pending; returns how many."""
        ...

    def pending(self, name: str, *, limit: int = 1000) -> list[Item]:
        """The oldest pending deliveries, by position."""
        ...

    def pending_by_key(self, name: str, *, limit: int = 1000) -> PendingWindow:
        """At most `limit` pending deliveries for order per key: each key's oldest first.

        While fewer than `limit` keys have pending deliveries, every key's oldest one is
        among them, whatever the number of deliveries of one key; the keys with the
        oldest pending deliveries come first. When some are left out, no key has more
        than half of `limit`, so that one key with a long backlog leaves room for the
        others' new events.
        """
        ...

    def items(self, name: str, state: str, *, limit: int = 100) -> list[Item]:
        """Deliveries in `state`, by position."""
        ...

    def counts(self, name: str) -> dict[str, int]:
        """Deliveries by state: every key of STATES present."""
        ...

    def record_attempt(self, attempt: Attempt, state: str) -> bool:
        """Journal `attempt` and set its delivery to `state` (next due `attempt.next_ms`).

        Returns False, changing nothing, when the delivery is gone.
        """
        ...

    def record_attempts(self, outcomes: Sequence[tuple[Attempt, str]]) -> list[bool]:
        """`record_attempt` for each `(attempt, state)`, all in one transaction.

        One commit makes the whole group durable (a group commit); it returns one flag
        per outcome, in order (False: that delivery is gone). On an error nothing of
        the group is recorded.
        """
        ...

    def attempts(
        self, *, event_id: str | None = None, destination: str | None = None, limit: int = 100
    ) -> list[Attempt]:
        """Journalled attempts, newest first, optionally of one event or destination."""
        ...

    # -- replays --------------------------------------------------------------------

    def create_replay(self, name: str, selection: str, rate: float | None) -> int:
        """A new replay job's id (UnknownDestination if there is none)."""
        ...

    def set_replay_queued(self, job: int, queued: int) -> None: ...

    def replays(self, name: str) -> list[ReplayJob]: ...

    # -- leases ---------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the destination's lease for `ttl` seconds; False if another holds it."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up, if `holder` has it."""
        ...

    def lease_holder(self, name: str) -> str | None:
        """Who holds an unexpired lease, or None."""
        ...
