"""The backend-neutral group commit: the first caller of a group commits it for all.

Leader and followers, as databases' binlog group commits do: a caller queues its
appends; the first in an empty queue is the leader of the next group. It takes the
committing lock (waiting there while the group before commits), then the backend's
`turn()`, then every append queued by then, and hands them to the backend's `commit`
in one call, so one transaction (one fsync, one round trip) makes them all durable;
it then wakes the others of its group with their results. No thread stands between
a request and its commit: a group costs one wake-up per follower and none for the
leader. Callers arriving while a group commits queue behind the next leader, so
groups grow with the load. Refused deliveries are journalled with the next group and
never waited for (a short-lived thread commits them when no append is coming).

Lingering: when the queue is short but other callers were inside `append` at the
same time as recently as the last group (queued or committing), the leader waits up
to `linger` seconds (1 ms) for `linger_group` (12) queued appends before it commits,
so that one fsync serves more of them. It never waits when the queue already holds
enough, nor when no other caller was in flight: a lone sequential caller commits at
once, one group per append.

`turn()`, when the backend gives one, is a context manager held around taking a group
and committing it: the SQLite backend's writers' lock, which writers of several
processes on one file take in turn. It may raise StoreUnavailable when the turn is
not had in time: the callers queued then get that error. The group is taken once the
turn is had, so appends that queued while another process committed join it.

`commit(events, rejections, probe)` commits one group in one transaction and returns
one `AppendResult` per event, in order; `rejections` are `(epoch ms, Rejection)` pairs
and `probe` asks for a real write even when the group holds nothing else. It raises a
`StoreError` (already translated, usually `StoreUnavailable`) when the group did not
commit, and on *any* exception, BaseException included, it leaves nothing half done
(rolled back), so the next leader may call it again.

Timeouts: a follower, and a leader waiting for the committing lock, waits at most
`timeout` seconds. The leader's own commit is bounded by the backend (SQLite's busy
timeout and the writers' turn, PostgreSQL's lock and statement timeouts), not here:
it runs on the leader's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from .contract import (
    AppendResult,
    NewEvent,
    Rejection,
    StoreClosed,
    StoreError,
    StoreUnavailable,
)
from .encoding import now_ms

log = logging.getLogger("ikledger.store")

MAX_GROUP = 512  # events per transaction; bounds the time one commit holds the lock
LINGER = 0.001  # seconds a leader may wait for a fuller group (see the module docstring)
LINGER_GROUP = 12  # queued appends that end the wait at once
REJECTED_KEEP = 10_000  # refused deliveries a journal keeps by default (the newest)
_REJECT_QUEUE_MAX = 10_000  # a flood of refused requests never grows memory past this

Commit = Callable[[list[NewEvent], list[tuple[int, Rejection]], bool], list[AppendResult]]


class _Waiter:
    """One caller's appends (a probe has none), queued until a leader commits them.

    The caller blocks on a bare lock (a fraction of a `threading.Event` on both sides),
    released when something changed for it: its group finished (`finished`), or it
    was made the leader of the next group (`lead`). The flags are what counts; a
    release may be left over from an earlier change.
    """

    __slots__ = ("_lock", "error", "events", "finished", "lead", "probe", "results")

    def __init__(self, events: Sequence[NewEvent], *, probe: bool = False):
        self._lock = threading.Lock()
        self._lock.acquire()
        self.events = events
        self.probe = probe
        self.results: list[AppendResult] = []
        self.error: StoreError | None = None
        self.finished = False
        self.lead = False

    def wait(self, timeout: float) -> bool:
        """Block until woken or `timeout` passes."""
        return self._lock.acquire(timeout=timeout)

    def wake(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # a release not yet consumed: one is enough
            pass

    def finish(self, results: list[AppendResult], error: StoreError | None) -> None:
        self.results, self.error, self.finished = results, error, True
        self.wake()


class GroupWriter:
    """Queues appends; the first caller of each group commits it for the group.

    A caller waits at most `timeout` seconds for its group (except the leader's own
    commit, bounded by the backend). Still queued then, its events are taken out
    (nothing stored); already committing, the outcome is unknown and a retry is
    recognised by id. A commit interrupted by a BaseException fails its group with
    StoreUnavailable, raises in the leader, and leaves the next group to its leader.
    """

    def __init__(
        self,
        commit: Commit,
        *,
        timeout: float,
        name: str = "ikledger-writer",
        linger: float = LINGER,
        linger_group: int = LINGER_GROUP,
        turn: Callable[[], AbstractContextManager] = nullcontext,
    ):
        self._commit = commit
        self._turn = turn
        self.timeout = timeout
        self.name = name
        self.linger = linger
        self.linger_group = linger_group
        self._mutex = threading.Lock()  # guards the queue and the fields below
        self._committing = threading.Lock()  # held by whoever takes and commits a group
        self._appends: list[_Waiter] = []  # queued; the first is the next group's leader
        self._rejections: list[tuple[int, Rejection]] = []
        self._inflight = 0  # callers in the group being committed
        # Most callers inside `append` at once (queued + committing) since the last
        # group was taken; 0 again whenever a group ends with nobody queued.
        self._peak = 0
        self._lingering: threading.Lock | None = None  # released when the queue is full enough
        self._linger_target = 0
        self._flushing = False  # a thread is committing queued refusals
        self.groups = 0  # groups handed to `commit` (probes and journal-only ones too)
        self.event_groups = 0  # of which carried at least one event
        self.events = 0  # events in those groups
        self.lingered = 0  # of which the leader waited for a fuller group first
        self.rejections_dropped = 0
        self._closed = False
        self.last_write_error: str | None = None
        self.last_write_error_at: float | None = None
        self._probed_at: float | None = None  # monotonic time of the last write probe
        self._probe_lock = threading.Lock()

    # -- callers ----------------------------------------------------------------

    def append_many(self, events: Sequence[NewEvent]) -> list[AppendResult]:
        """Append events in order; returns only after they are durable.

        Raises StoreUnavailable when their group could not commit (none stored) or
        did not finish within `timeout` (outcome unknown; retrying is safe).
        """
        if not events:
            return []
        waiter = self._submit(_Waiter(events))
        if waiter.error is not None:
            raise waiter.error
        return waiter.results

    def _submit(self, waiter: _Waiter) -> _Waiter:
        """Queue a waiter; lead its group or wait for it, at most `timeout` seconds."""
        deadline = time.monotonic() + self.timeout
        with self._mutex:
            if self._closed:
                raise StoreClosed("the store is closed")
            appends = self._appends
            appends.append(waiter)
            waiter.lead = len(appends) == 1
            self._peak = max(self._peak, len(appends) + self._inflight)
            if self._lingering is not None and len(appends) >= self._linger_target:
                self._lingering.release()  # the leader's group is full enough
                self._lingering = None
        try:
            while True:
                if waiter.lead:
                    waiter.lead = False
                    if not self._lead(deadline, waiter):
                        break
                if waiter.finished:
                    return waiter
                left = deadline - time.monotonic()
                if left <= 0 or not waiter.wait(left):
                    break
        except BaseException:
            self._withdraw(waiter)
            raise
        if waiter.finished:  # finished while its time ran out
            return waiter
        if self._withdraw(waiter):
            raise StoreUnavailable(
                f"the writer took no group within {self.timeout:g} s; nothing was stored"
            )
        if waiter.finished:
            return waiter
        raise StoreUnavailable(
            f"the commit did not finish within {self.timeout:g} s; its outcome is "
            "unknown (a retry is recognised by id)"
        )

    def _withdraw(self, waiter: _Waiter) -> bool:
        """Take a waiter out of the queue, if still there; the next in line then leads."""
        with self._mutex:
            appends = self._appends
            if waiter not in appends:
                return False
            first = appends[0] is waiter
            appends.remove(waiter)
            if first and appends:
                appends[0].lead = True
                appends[0].wake()
            return True

    @property
    def queued(self) -> int:
        """Callers waiting for a group to take them (not counting those committing)."""
        with self._mutex:
            return len(self._appends)

    def check_writable(self, *, max_age: float = 1.0) -> str | None:
        """Why appends would fail now, or None; probes with a real write when in doubt.

        The first call, and calls while the last write failed, commit a one-row write
        as a group of their own (at most one probe per `max_age` seconds; the others
        reuse its answer). So a fault present at start-up is reported before any
        delivery, and a cleared fault is noticed without waiting for a delivery to retry.
        """
        if self._closed:
            raise StoreClosed("the store is closed")
        with self._probe_lock:
            stale = self._probed_at is None or (
                self.last_write_error is not None and time.monotonic() - self._probed_at >= max_age
            )
            if stale:
                try:
                    self._submit(_Waiter((), probe=True))
                except StoreUnavailable as exc:
                    return str(exc)
                finally:
                    self._probed_at = time.monotonic()
        return self.last_write_error

    def record_rejection(self, rejection: Rejection) -> None:
        """Queue a journal row for a refused delivery; dropped (and counted) under flood.

        Committed with the next group; when no append is queued, a short-lived thread
        commits it, so the refused caller never waits for a commit.
        """
        with self._mutex:
            if self._closed:
                return
            if len(self._rejections) >= _REJECT_QUEUE_MAX:
                self.rejections_dropped += 1
                return
            self._rejections.append((now_ms(), rejection))
            if self._appends or self._flushing:
                return  # the next group takes it
            self._flushing = True
        threading.Thread(target=self._flush, name=f"{self.name}-journal", daemon=True).start()

    def close(self) -> bool:
        """Commit what is queued and let no more in, waiting a bounded time. Idempotent.

        Returns False when the committing lock was not had in time (a commit is
        stuck); the callers still queued then get StoreClosed, and the backend must
        not free what `commit` uses.
        """
        with self._mutex:
            again = self._closed
            self._closed = True
        if self.groups and not again:
            # Events and the commits that carried them, so the first number is never
            # smaller than the second; probes and refusal-only commits counted apart.
            log.info(
                "%s: %d events in %d commits (%d more commits without events; %d after lingering)",
                self.name,
                self.events,
                self.event_groups,
                self.groups - self.event_groups,
                self.lingered,
            )
        if self._committing.acquire(timeout=max(2 * self.timeout, 1.0)):
            try:
                while (self._appends or self._rejections) and self._take_and_commit():
                    pass
            finally:
                self._committing.release()
            return True
        log.warning("store writer did not stop within %.1f s (a commit is stuck)", self.timeout)
        with self._mutex:
            stranded, self._appends = self._appends, []
        for waiter in stranded:
            waiter.finish([], StoreClosed("the store was closed before this append committed"))
        return False

    # -- leading a group ----------------------------------------------------------

    def _lead(self, deadline: float, waiter: _Waiter | None = None) -> bool:
        """Take the committing lock by `deadline`, then commit what is queued.

        False when the lock was not had in time (the group before is stuck).
        """
        if not self._committing.acquire(timeout=max(deadline - time.monotonic(), 0)):
            return False
        try:
            if not self._closed:  # after close, `close` itself commits what was queued
                self._linger(waiter)
                self._take_and_commit()
        finally:
            self._committing.release()
        return True

    def _flush(self) -> None:
        """A thread of its own: commit queued refusals while no append is coming."""
        try:
            while self._lead(time.monotonic() + self.timeout):
                with self._mutex:
                    if not self._rejections or self._appends or self._closed:
                        break
        except BaseException as exc:  # a journal thread must not die silently
            log.error("store writer: committing refused deliveries failed", exc_info=exc)
        finally:
            with self._mutex:
                self._flushing = False

    def _linger(self, waiter: _Waiter | None) -> None:
        """Wait at most `linger` s for callers known to be in flight to queue.

        The target is the most callers seen inside `append` at once since the last
        group was taken, capped at `linger_group`: with one caller it is met already.
        Only the leader of the queued group lingers (not one whose appends another
        group took, nor the journal's thread).
        """
        with self._mutex:
            target = min(self.linger_group, self._peak)
            appends = self._appends
            if (
                self.linger <= 0
                or len(appends) >= target
                or not appends
                or appends[0] is not waiter
            ):
                return
            self.lingered += 1
            full = threading.Lock()
            full.acquire()
            self._lingering, self._linger_target = full, target
        full.acquire(timeout=self.linger)
        with self._mutex:
            self._lingering = None

    def _take_and_commit(self) -> bool:
        """Under the committing lock: the writers' turn, then the queued group, committed.

        A turn not had in time fails every queued caller with its error (returns False).
        """
        try:
            with self._turn():  # the writers' turn: the group is taken inside it
                group, rejections = self._take()
                if group or rejections:
                    self._commit_group(group, rejections)
        except StoreUnavailable as exc:  # from the turn only: a group never raises it
            self._turn_missed(exc)
            return False
        return True

    def _take(self) -> tuple[list[_Waiter], list[tuple[int, Rejection]]]:
        """The next group and the queued rejections: whatever is queued now.

        Taken once the turn is had, so the appends queued while another process's
        writer committed join this group rather than wait for the next. Callers left
        in the queue (past MAX_GROUP) get their next leader.
        """
        with self._mutex:
            appends = self._appends
            count = taken = 0
            while taken < len(appends) and count < MAX_GROUP:
                count += len(appends[taken].events)
                taken += 1
            group = appends[:taken]
            del appends[:taken]
            if appends and not appends[0].lead:
                appends[0].lead = True
                appends[0].wake()
            rejections, self._rejections = self._rejections, []
            self._inflight = len(group)
            self._peak = len(appends) + len(group)
            if group or rejections:
                self.groups += 1
            if count:
                self.event_groups += 1
                self.events += count
        return group, rejections

    def _commit_group(self, group: list[_Waiter], rejections: list) -> None:
        events = [event for waiter in group for event in waiter.events]
        error: StoreError | None = None
        try:
            results = self._commit(events, rejections, any(w.probe for w in group))
            if len(results) != len(events):
                raise RuntimeError(f"commit returned {len(results)} results for {len(events)}")
        except StoreError as exc:
            error = exc
        except Exception as exc:  # a bug: answer, log, go on
            log.exception("store commit failed with an unexpected error")
            error = StoreError(f"internal store error: {exc!r}")
        except BaseException as exc:  # the leader is interrupted: no follower may hang
            reason = f"a commit was interrupted: {exc!r}"
            self._ended(group, reason, StoreUnavailable(f"{reason}; nothing was stored"))
            raise
        if error is None:
            self.last_write_error = None
            start = 0
            with self._mutex:
                self._ended_locked()
            for waiter in group:
                end = start + len(waiter.events)
                waiter.finish(results[start:end], None)
                start = end
        else:
            self._ended(group, str(error), error)

    def _ended(self, group: list[_Waiter], reason: str, error: StoreError) -> None:
        """A group that did not commit: every caller in it gets `error`."""
        with self._mutex:
            self._ended_locked()
            self.last_write_error, self.last_write_error_at = reason, time.time()
        for waiter in group:
            waiter.finish([], error)

    def _ended_locked(self) -> None:
        self._inflight = 0
        if not self._appends:
            self._peak = 0  # idle: whoever comes next starts a new count

    def _turn_missed(self, error: StoreUnavailable) -> None:
        """The turn was not had in time: nothing was taken; the queued callers get `error`.

        `check_writable` reports the cause until a group commits.
        """
        log.warning("%s: %s", self.name, error)
        with self._mutex:
            stranded, self._appends = self._appends, []
            self.last_write_error, self.last_write_error_at = str(error), time.time()
        for waiter in stranded:
            waiter.finish([], error)
