"""Retention and erasure as the receiver offers them: `prune --before`, `erase`, and the
daily prune of `serve` under IKLEDGER_RETAIN. The store removes and records; the read
models are then rebuilt from what the log still holds (the usual build and swap).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from store import EventStore

log = logging.getLogger("ikledger.retention")

DAY = 86_400.0


class RetentionError(ValueError):
    """A time or age that cannot be read; the message says what is accepted."""


def cutoff(text: str, now: datetime) -> str:
    """The time `text` names, as the log writes times: an age before `now` ("90d",
    "12h", "30m") or an ISO-8601 time or date (naive is UTC), read as every command and
    page reads times (`receiver.timespec`). Raises RetentionError otherwise."""
    from projections import InvalidQuery
    from receiver import timespec

    try:
        return timespec.instant(text, now)
    except InvalidQuery as exc:
        raise RetentionError(str(exc)) from None


def prune(store: EventStore, before: str) -> int:
    """Remove the bodies of the events received before `before`; returns how many went."""
    reason = f"retention: bodies received before {before}"
    return store.erase_bodies("prune", reason, received_before=before)


def erase(store: EventStore, event_id: str, reason: str) -> int:
    """Remove one event's body (1), or nothing when it is already gone (0).

    Raises LookupError for an id not in the log, RetentionError without a reason.
    """
    if not reason.strip():
        raise RetentionError("an erasure needs a reason (--reason)")
    event = store.get(event_id)
    if event is None:
        raise LookupError(f"no event with id {event_id!r}")
    return store.erase_bodies("erase", reason.strip(), position=event.position)


class Retention:
    """A thread of `serve` that prunes what is older than `retain` once a day (the
    first time at start-up), then has the read models rebuilt by `rebuild()`."""

    def __init__(self, store: EventStore, retain: str, rebuild, every: float = DAY):
        self.store = store
        self.retain = retain
        self.rebuild = rebuild
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ikledger-retention")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                before = cutoff(self.retain, datetime.now(UTC))
                removed = prune(self.store, before)
                if removed:
                    log.info("pruned the bodies of %s events received before %s", removed, before)
                    self.rebuild()
            except Exception:  # never let the loop die; try again tomorrow
                log.exception("the daily prune failed")
            if self._stop.wait(self.every):
                return
