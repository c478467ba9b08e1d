"""The forwarder of one destination (`supervisor.run` runs one per destination).

A `Forwarder` holds its destination's lease (one forwarder per destination across every
process and receiver of the log), turns new log events into pending deliveries, asks
the pure scheduler (`scheduler.py`) what is due, attempts it through the injected HTTP
client, and journals every attempt with its outcome in one transaction (attempts that
finish together share it: `journal.py`).

At least once: a delivery stays `pending` in the database until its attempt's outcome
is recorded, so an attempt whose process died mid-request is made again after the
restart (by whoever holds the lease then); an attempt recorded is never made again
unless replayed. An attempt that never returned is not in the journal.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from store import EventStore, StoreError
from store.forwarding import (
    DELIVERED,
    FAILED,
    PENDING,
    REPLAY,
    SCHEDULED,
    Attempt,
    Destination,
    Item,
    PendingWindow,
    Queued,
)

from .client import Answer, Client, TransportError
from .heads import HeadIndex
from .journal import AttemptJournal
from .keys import ordering_key
from .schedule import next_delay, parse_retry_after
from .scheduler import Plan, RateLimiter, plan
from .signing import headers, signing_key

log = logging.getLogger("ikledger.forwarding")

BODY_PRUNED = "body_pruned"  # the journal's error when the body went before delivery


@dataclass(frozen=True)
class Settings:
    """How forwarders run (not per destination). Times in seconds."""

    imagekit_secrets: tuple[str, ...] = ()
    lease_ttl: float = 5.0  # another process takes a dead holder's lease after this
    poll: float = 0.05  # the longest sleep between two looks at the log
    reload: float = 1.0  # how often the destination and its pending window are re-read
    window: int = 1000  # pending deliveries held in memory
    batch: int = 500  # log events read per step
    drain: float = 30.0  # how long stopping waits for attempts in flight
    # The shortest time between two looks for new events and, while the log grows
    # (ingest is busy), between two journal commits (each one transaction): fewer,
    # bigger transactions leave the log's write lock to ingest. A backlog with no
    # ingest is journalled as fast as the commits go.
    gather: float = 0.02


def holder_name() -> str:
    """A lease holder's name: host, process and a random part (threads differ too)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def matches(patterns: Sequence[str], event_type: str) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


class Forwarder:
    """Delivers one destination's events while it holds the destination's lease."""

    def __init__(
        self,
        store: EventStore,
        name: str,
        *,
        client: Client,
        settings: Settings = Settings(),
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
    ):
        """`on_attempt(attempt)` is called after each attempt is journalled (metrics);
        its failures are logged, never raised."""
        self.store = store
        self.on_attempt = on_attempt
        # The forwarder's own bookkeeping: a commit of it lost to a power cut only
        # sends a delivery again (store.contract: `forwarding(durable=False)`).
        self.state = store.forwarding(durable=False)
        self.journal: AttemptJournal | None = None  # while holding the lease
        self.name = name
        self.client = client
        self.settings = settings
        self.holder = holder or holder_name()
        self.clock = clock
        self.rng = rng or random.Random()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # The pending deliveries held, in position order (the scheduler reads them so,
        # without sorting); `_in_order` is False when one was put back out of order.
        self._window: dict[int, Item] = {}
        self._window_top = 0  # the highest position put in the window since its reload
        self._capacity = 1  # the destination's max_in_flight, as last read
        self._in_order = True
        # The oldest delivery of each key held, for the scheduler with order per key.
        self._heads = HeadIndex()
        self._bodies: dict[int, bytes] = {}
        self._in_flight: dict[int, str] = {}  # being attempted: position -> key
        self._settling: dict[int, str] = {}  # answered, being journalled
        self._reloading = False
        self._touched: set[int] = set()  # finished during a reload
        self._more = False  # pending deliveries beyond the window
        # With order per key, what the window holds of each key (`pending_by_key`): at
        # most `_per_key` deliveries; `_open` keys have pending deliveries outside it,
        # so a new event of theirs must not join it (it would overtake them); with
        # `_every_key`, a key neither held nor open has no pending delivery.
        self._per_key = settings.window
        self._open: set[str] = set()
        self._every_key = True
        self._loaded = 0  # deliveries held after the last reload
        self._dropped = 0  # deliveries that left the window (delivered or failed) since
        self._limiters: dict[int | None, RateLimiter] = {}
        self._stop_holding = False
        self._cursor = 0
        self._last_seen: int | None = None  # the log's last position at the last look
        self._stale = False  # the window may miss or misstate deliveries: reload it

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- the loop -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Forward until `stop` is set or the destination is paused or removed.

        Raises ForwardingError when the destination cannot be signed for.
        """
        ttl = self.settings.lease_ttl
        while not stop.is_set():
            destination = self.state.destination(self.name)
            if destination is None or destination.paused:
                return
            if not self.state.acquire_lease(self.name, self.holder, ttl):
                stop.wait(ttl / 4)
                continue
            log.info("forwarding to %s (%s)", self.name, destination.display_url)
            try:
                self._hold(stop, destination)
            finally:
                try:
                    self.state.release_lease(self.name, self.holder)
                except StoreError as exc:
                    log.warning("%s: could not release the lease: %s", self.name, exc)

    def _hold(self, stop: threading.Event, destination: Destination) -> None:
        key = signing_key(destination.secret, self.settings.imagekit_secrets)
        self._stop_holding = False
        renewed = reloaded = self.clock()
        self._reload(destination)
        workers = ThreadPoolExecutor(destination.max_in_flight, thread_name_prefix="ikl-fwd")
        self.journal = AttemptJournal(
            self.state, name=f"ikl-fwd-journal-{self.name}", after=self._nudge
        )
        ingested = float("-inf")
        try:
            while not stop.is_set() and not self._stop_holding:
                now = self.clock()
                if now - renewed >= self.settings.lease_ttl / 3:
                    if not self.state.acquire_lease(
                        self.name, self.holder, self.settings.lease_ttl
                    ):
                        log.warning("%s: lost the lease", self.name)
                        return
                    renewed = now
                if self._stale or now - reloaded >= self.settings.reload:
                    destination = self.state.destination(self.name)
                    if destination is None or destination.paused:
                        return
                    self._stale = False
                    self._reload(destination)
                    reloaded = now
                if now - ingested >= self.settings.gather:
                    self._ingest(destination)
                    ingested = now
                wake = self._dispatch(workers, destination, key)
                timeout = self.settings.poll
                if wake is not None:
                    timeout = min(timeout, max(0.0, wake / 1000 - self.clock()))
                self._wake.wait(timeout)
                self._wake.clear()
        except StoreError as exc:
            log.warning("%s: the store failed, retrying: %s", self.name, exc)
            stop.wait(self.settings.poll)
        finally:
            self._stop_holding = True
            workers.shutdown(wait=True, cancel_futures=True)
            self.journal.close()  # the attempts made are journalled before the lease goes

    # -- reading the log and the pending window ------------------------------------

    def _ingest(self, destination: Destination) -> None:
        """Queue the log's new events (after the cursor) that the destination wants."""
        cursor = self._cursor
        last = self.store.last_position()
        growing = self._last_seen is not None and last > self._last_seen
        self._last_seen = last
        if self.journal is not None:
            self.journal.gather = self.settings.gather if growing else 0.0
        if last <= cursor:
            return
        for batch in self.store.read_batches(cursor, batch_size=self.settings.batch):
            chosen = [e for e in batch if matches(destination.types, e.type)]
            queued = [Queued(e.position, e.id, ordering_key(e)) for e in chosen]
            due = self.now_ms()
            added = self.state.enqueue(self.name, queued, due_ms=due, cursor=batch[-1].position)
            self._cursor = batch[-1].position
            if added != len(queued):
                # Some were queued already (by a replay): their rows say where they stand.
                self._stale = True
                continue
            with self._lock:
                for event, q in zip(chosen, queued, strict=True):
                    if not self._may_hold(destination, q.key):
                        self._more = True
                        if destination.unordered:
                            break
                        self._open.add(q.key)  # its later events stay out too
                        continue
                    if q.position not in self._window:
                        self._put(
                            Item(self.name, q.position, q.event_id, q.key, PENDING, 0, due, None)
                        )
                        self._bodies[q.position] = event.body
            if len(batch) < self.settings.batch or self._more:
                # A backlog past the window is queued a batch per turn of the loop, so
                # that attempts start at once rather than after the whole backlog.
                return

    def _may_hold(self, destination: Destination, key: str) -> bool:
        """Whether a new event of `key` may join the window (lock held).

        With order per key, only while no earlier delivery of its key is pending outside
        the window, and within the key's share: one key's backlog leaves room for others.
        """
        if len(self._window) >= self.settings.window:
            return False
        if destination.unordered:
            return True
        if key in self._open:
            return False
        held = self._heads.held(key)
        return held < self._per_key and (held > 0 or self._every_key)

    def _reload(self, destination: Destination) -> None:
        """Re-read the pending window, the cursor and the replay jobs' rates.

        Deliveries that finished while the window was read keep their in-memory state:
        the rows read may predate their outcome.
        """
        with self._lock:
            self._reloading = True
            self._touched.clear()
        try:
            if destination.unordered:  # every pending delivery is deliverable
                rows = self.state.pending(self.name, limit=self.settings.window)
                found = PendingWindow(
                    rows, len(rows) >= self.settings.window, self.settings.window, frozenset(), True
                )
            else:
                found = self.state.pending_by_key(self.name, limit=self.settings.window)
                rows = found.items
            self._cursor = max(self._cursor, destination.cursor)
            jobs = {job.id: job.rate for job in self.state.replays(self.name)}
            missing = [r.position for r in rows if r.position not in self._bodies]
            bodies = {e.position: e.body for e in self.store.get_positions(missing)}
        finally:
            with self._lock:
                self._reloading = False
        now = self.now_ms()
        with self._lock:
            window = {}
            for row in rows:
                if self._busy(row.position) or row.position in self._touched:
                    if row.position in self._window:
                        window[row.position] = self._window[row.position]
                    continue
                window[row.position] = row
            self._bodies.update(bodies)
            for position in list(self._bodies):
                if position not in window and not self._busy(position):
                    del self._bodies[position]
            self._window = window
            self._heads = HeadIndex((p, item.key) for p, item in window.items())
            self._capacity = destination.max_in_flight
            self._window_top = max(window, default=0)
            self._in_order = True  # the rows come in position order
            self._more = found.more
            self._per_key = found.per_key
            self._open = set(found.open_keys)
            self._every_key = found.every_key
            self._loaded = len(window)
            self._dropped = 0
            limiters: dict[int | None, RateLimiter] = {
                None: self._limiter(None, destination.rate, now)
            }
            for job, rate in jobs.items():
                if rate is not None:
                    limiters[job] = self._limiter(job, rate, now)
            self._limiters = limiters

    def _limiter(self, job: int | None, rate: float | None, now: int) -> RateLimiter:
        current = self._limiters.get(job)
        if current is not None and current.rate == rate:
            return current
        return RateLimiter(rate, now)

    # -- attempting -----------------------------------------------------------------

    def _dispatch(self, workers, destination: Destination, key: bytes) -> int | None:
        with self._lock:
            chosen = self._plan(destination, destination.max_in_flight)
            # Pending deliveries wait outside the window: read it again once half of
            # what the last reload brought has gone, or once some has and nothing held
            # can start (the rest of it stuck: a key's next deliveries may be waiting).
            idle = not (chosen.start or self._in_flight or self._settling)
            need_reload = self._more and (
                self._dropped * 2 >= max(1, self._loaded) or (idle and self._dropped > 0)
            )
        for item in chosen.start:
            workers.submit(self._attempt, destination, key, item)
        if need_reload:
            self._reload(destination)
        return chosen.wake_ms

    def _plan(self, destination: Destination, max_in_flight: int) -> Plan:
        """Ask the scheduler what to attempt now, and mark it in flight (lock held)."""
        if not self._in_order:
            self._window = dict(sorted(self._window.items()))
            self._in_order = True
        ordered = not destination.unordered
        # With order per key only each key's oldest delivery can start: the scheduler
        # is handed those alone (the same plan, without walking the whole window).
        window = self._window
        pending = (window[p] for p in self._heads.heads) if ordered else window.values()
        chosen = plan(
            pending,
            in_order=True,
            now_ms=self.now_ms(),
            in_flight=self._in_flight,
            max_in_flight=max_in_flight,
            settling=self._settling,
            ordered=ordered,
            limiters=self._limiters,
        )
        for item in chosen.start:
            self._in_flight[item.position] = item.key
        return chosen

    def _attempt(self, destination: Destination, key: bytes, item: Item | None) -> None:
        """Attempt `item`, then whatever is due next while there is some.

        A worker whose answer came goes on to the next due delivery itself: handing
        each free slot back to the loop would cost two thread wake-ups per attempt.
        """
        while item is not None:
            try:
                self._attempt_once(destination, key, item)
            except Exception:
                log.exception("%s: attempt of event %s failed", self.name, item.event_id)
                self._finish(item, item._replace(next_ms=self.now_ms() + 1000))
                self._wake.set()
            if self._stop_holding:
                return
            item = None
            with self._lock:  # this worker's slot is free: at most one more for it
                if len(self._in_flight) < destination.max_in_flight:  # not taken meanwhile
                    chosen = self._plan(destination, len(self._in_flight) + 1)
                    item = chosen.start[0] if chosen.start else None

    def _attempt_once(self, destination: Destination, key: bytes, item: Item) -> None:
        body = self._bodies.get(item.position)
        if body is None:
            found = self.store.get_positions([item.position])
            if not found:
                raise StoreError(f"position {item.position} is not in the log")
            body = found[0].body
        number = item.attempts + 1
        started = self.clock()
        if not body:  # pruned or erased before it was delivered: nothing left to send
            self._give_up(item, number, started, BODY_PRUNED)
            return
        sent_headers = headers(
            key,
            event_id=item.event_id,
            body=body,
            timestamp=int(started),
            position=item.position,
            attempt=number,
            replay_job=item.replay_job,
        )
        answer: Answer | None = None
        error = None
        try:
            answer = self.client.post(destination.url, body, sent_headers, destination.timeout)
        except TransportError as exc:
            error = exc.kind
        ended = self.clock()
        status = answer.status if answer else None
        state, next_ms, gone = self._outcome(destination, number, answer, ended)
        attempt = Attempt(
            self.name,
            item.position,
            item.event_id,
            number,
            REPLAY if item.replay_job is not None else SCHEDULED,
            item.replay_job,
            int(started * 1000),
            max(0, int((ended - started) * 1000)),
            status,
            error,
            answer.body if answer else b"",
            next_ms,
        )
        with self._lock:  # answered: the request slot is free, the delivery still held
            self._in_flight.pop(item.position, None)
            self._settling[item.position] = item.key

        def done(recorded: bool, failure: BaseException | None) -> None:
            if failure is not None:  # still pending in the database: attempted again
                log.warning(
                    "%s: attempt of event %s not journalled: %s", self.name, item.event_id, failure
                )
                self._finish(item, item._replace(next_ms=self.now_ms() + 1000))
            else:
                self._journalled(destination, item, attempt, state, gone)
            # The loop looks at the window once the whole group is done (the journal's
            # `after`): its keys are free again.

        assert self.journal is not None  # set while this forwarder holds the lease
        self.journal.submit(attempt, state, done)

    def _journalled(
        self, destination: Destination, item: Item, attempt: Attempt, state: str, gone: bool
    ) -> None:
        """After an attempt is durable: observe it, pause on 410 Gone, update the window."""
        if self.on_attempt is not None:
            try:
                self.on_attempt(attempt)
            except Exception:
                log.exception("%s: observing an attempt failed", self.name)
        if gone:
            reason = f"410 Gone from {destination.display_url} (event {item.event_id})"
            try:
                self.state.set_paused(self.name, True, reason)
                log.warning("%s: paused: %s", self.name, reason)
                self._stop_holding = True
            except StoreError as exc:  # the next attempt meets the 410 again
                log.warning("%s: could not pause after a 410: %s", self.name, exc)
        if state == PENDING:
            self._finish(item, item._replace(attempts=attempt.number, next_ms=attempt.next_ms))
        else:
            self._finish(item, None)

    def _give_up(self, item: Item, number: int, started: float, reason: str) -> None:
        """Journal an attempt that was never made (no POST) and end the delivery failed."""
        attempt = Attempt(
            self.name,
            item.position,
            item.event_id,
            number,
            REPLAY if item.replay_job is not None else SCHEDULED,
            item.replay_job,
            int(started * 1000),
            0,
            None,
            reason,
            b"",
            None,
        )
        self.state.record_attempt(attempt, FAILED)
        log.warning("%s: event %s not forwarded: %s", self.name, item.event_id, reason)
        if self.on_attempt is not None:
            try:
                self.on_attempt(attempt)
            except Exception:
                log.exception("%s: observing an attempt failed", self.name)
        self._finish(item, None)
        self._wake.set()

    def _outcome(
        self, destination: Destination, number: int, answer: Answer | None, now: float
    ) -> tuple[str, int | None, bool]:
        """(state, next attempt time, 410 Gone) after attempt `number`."""
        now_ms = int(now * 1000)
        if answer is not None and 200 <= answer.status < 300:
            return DELIVERED, None, False
        if answer is not None and answer.status == 410:
            return PENDING, now_ms, True  # attempted again on resume
        status = answer.status if answer else None
        retry_after = parse_retry_after(answer.headers.get("retry-after"), now) if answer else None
        delay = next_delay(
            destination.schedule_ms, number, self.rng, status=status, retry_after_ms=retry_after
        )
        if delay is None:
            return FAILED, None, False
        return PENDING, now_ms + delay, False

    def _nudge(self) -> None:
        """Wake the loop after a group of attempts is journalled, if a worker is idle.

        While every request slot is taken, the workers themselves pick up what the
        group made due (its keys are free again): waking the loop would cost a thread
        switch per group for nothing.
        """
        with self._lock:
            idle = len(self._in_flight) < self._capacity
        if idle:
            self._wake.set()

    def _busy(self, position: int) -> bool:
        """Whether an attempt of `position` is under way (call with the lock held)."""
        return position in self._in_flight or position in self._settling

    def _finish(self, item: Item, retry: Item | None) -> None:
        """Update the window after an attempt: drop the delivery, or keep it for its retry.

        The caller wakes the loop (once for a group of attempts)."""
        with self._lock:
            self._in_flight.pop(item.position, None)
            self._settling.pop(item.position, None)
            if self._reloading:
                self._touched.add(item.position)
            if retry is None:
                if self._window.pop(item.position, None) is not None:
                    self._dropped += 1
                self._heads.discard(item.position)
                self._bodies.pop(item.position, None)
            else:
                self._put(retry)

    def _put(self, item: Item) -> None:
        """Hold `item` in the window, noting when it breaks position order (lock held)."""
        if item.position not in self._window and item.position < self._window_top:
            self._in_order = False
        self._window[item.position] = item
        self._heads.add(item.position, item.key)
        self._window_top = max(self._window_top, item.position)
