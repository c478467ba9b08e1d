"""The SQLite log's rows as the contract's records, and the reads that count them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..contract import Delivery, Event, StoreCorrupt
from ..encoding import decode_scheme, decode_time
from .commit import EVENT_COLUMNS
from .migrations import DELIVERY_FOLD, TYPE_FOLD

__all__ = [
    "DELIVERY_COUNTS",
    "EVENT_COLUMNS",
    "JOURNAL_COLUMNS",
    "TYPE_COUNTS",
    "delivery",
    "event",
    "stored_delivery",
]

TYPE_COUNTS = (
    "SELECT type, sum(n) FROM (SELECT type, events AS n FROM type_counts UNION ALL "
    "SELECT type, count(*) FROM events WHERE position > "
    f"(SELECT max(position) / {TYPE_FOLD} * {TYPE_FOLD} FROM events) GROUP BY type) "
    "GROUP BY type ORDER BY type"
)
DELIVERY_COUNTS = (
    "SELECT outcome, sum(n) FROM (SELECT outcome, deliveries AS n FROM delivery_counts "
    "UNION ALL SELECT outcome, count(*) FROM deliveries WHERE seq > "
    f"(SELECT max(seq) / {DELIVERY_FOLD} * {DELIVERY_FOLD} FROM deliveries) GROUP BY outcome) "
    "GROUP BY outcome HAVING sum(n) > 0 ORDER BY outcome"
)
JOURNAL_COLUMNS = (
    "seq, received_at, outcome, status, reason, event_id, position, size, remote_addr, scheme"
)


def event(row: Sequence) -> Event:
    """An `events` row (in `EVENT_COLUMNS` order) as the read API's record.

    Raises StoreCorrupt for a row that does not hold what the store wrote (a body that
    is not bytes, a time that is no time): reading it again would fail again.
    """
    position, event_id, type_, created_at, received_at, scheme, chain, body = row
    if type(body) is not bytes or type(event_id) is not str or type(chain) is not bytes:
        raise StoreCorrupt(f"the event at position {position} has columns of the wrong type")
    try:
        received = decode_time(received_at)
    except (OverflowError, ValueError) as exc:
        raise StoreCorrupt(f"the event at position {position} has no readable time") from exc
    return Event(
        position, event_id, type_, created_at, received, decode_scheme(scheme), chain, body
    )


def delivery(row: Sequence) -> Delivery:
    """A `journal` row (in `JOURNAL_COLUMNS` order) as the read API's record."""
    seq, received_at, outcome, status, reason, event_id, position, size, remote, scheme = row
    return Delivery(
        seq,
        decode_time(received_at),
        outcome,
        status,
        reason,
        event_id,
        position,
        size,
        remote,
        decode_scheme(scheme),
    )


def stored_delivery(query: Callable[..., list[tuple]], position: int) -> int | None:
    """The seq of the `stored` journal row of `position`, found by bisection.

    Stored rows are written in position order (one group commit after another,
    under the write lock), so among them seq order is position order. About
    log2(journal) probes, each stepping over the other rows after its start;
    no index on every delivery, so the group commit writes no extra page.
    """
    lo, hi = position, query("SELECT coalesce(max(seq), 0) FROM deliveries")[0][0]
    while lo <= hi:
        mid = (lo + hi) // 2
        probe = query(
            "SELECT seq, position FROM deliveries WHERE seq >= ? AND seq <= ? "
            "AND outcome = 'stored' ORDER BY seq LIMIT 1",
            (mid, hi),
        )
        if not probe or probe[0][1] > position:
            hi = mid - 1
        elif probe[0][1] < position:
            lo = probe[0][0] + 1
        else:
            return probe[0][0]
    return None
