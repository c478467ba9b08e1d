"""The backend-neutral group-commit writer.

One thread takes every append waiting when it starts a group and hands them to the
backend's `commit` in one call, so one transaction (one fsync, one round trip) makes
them all durable. Refused deliveries are journalled with the next group and never
waited for. The writer owns queueing, grouping, waiting with a timeout, detecting its
own death and closing; the backend owns only "commit this group".

Lingering: when the queue is short but other callers were inside `append` at the
same time as recently as the last group (queued or committing), the writer waits up
to `linger` seconds (1 ms) for `linger_group` (12) queued appends before it commits,
so that one fsync serves more of them. It never waits when the queue already holds
enough, nor when no other caller was in flight: a lone sequential caller commits at
once, one group per append.

`turn()`, when the backend gives one, is a context manager held around taking a group
and committing it: the SQLite backend's writers' lock, which writers of several
processes on one file take in turn. It may raise StoreUnavailable when the turn is
not had in time: the callers queued then get that error, and the thread goes on. The group is taken once the turn is had, so
appends that queued while another process committed join it.

`commit(events, rejections, probe)` commits one group in one transaction and returns
one `AppendResult` per event, in order; `rejections` are `(epoch ms, Rejection)` pairs
and `probe` asks for a real write even when the group holds nothing else. It raises a
`StoreError` (already translated, usually `StoreUnavailable`) when the group did not
commit, and on *any* exception, BaseException included, it leaves nothing half done
(rolled back), so a fresh writer thread may call it again.
"""

from __future__ import annotations

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
from .lazylog import lazy_logger

log = lazy_logger("ikledger.store")

MAX_GROUP = 512  # events per transaction; bounds the time one commit holds the lock
LINGER = 0.001  # seconds the writer may wait for a fuller group (see the module docstring)
LINGER_GROUP = 12  # queued appends that end the wait at once
REJECTED_KEEP = 10_000  # refused deliveries a journal keeps by default (the newest)
_REJECT_QUEUE_MAX = 10_000  # a flood of refused requests never grows memory past this

Commit = Callable[[list[NewEvent], list[tuple[int, Rejection]], bool], list[AppendResult]]


class _Waiter:
    """One caller waiting for its group to commit (a probe has no events).

    The caller blocks on a lock the writer releases: a bare lock costs a fraction of
    a `threading.Event` (no condition, no waiter list) on both sides.
    """

    __slots__ = ("_lock", "error", "events", "probe", "results")

    def __init__(self, events: Sequence[NewEvent], *, probe: bool = False):
        self._lock = threading.Lock()
        self._lock.acquire()
        self.events = events
        self.probe = probe
        self.results: list[AppendResult] = []
        self.error: StoreError | None = None

    def wait(self, timeout: float) -> bool:
        """Block until the writer has finished this waiter's group, or `timeout` passes."""
        return self._lock.acquire(timeout=timeout)

    def done(self) -> bool:
        return self._lock.acquire(blocking=False)

    def wake(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # already woken: the writer died right after waking it
            pass

    def fail(self, error: StoreError) -> None:
        self.results, self.error = [], error
        self.wake()


class GroupWriter:
    """Queues appends, commits them in groups on one thread, and never lets a caller hang.

    A caller waits at most `timeout` seconds. Still queued then, its events are taken
    out (nothing stored); already committing, the outcome is unknown and a retry is
    recognised by id. If an exception escapes the thread (a bug, a BaseException from
    `commit`), every waiting caller gets StoreUnavailable at once, `check_writable`
    names the cause, and the next write starts a fresh thread.
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
        self._cond = threading.Condition()
        self._appends: list[_Waiter] = []
        self._rejections: list[tuple[int, Rejection]] = []
        self._inflight: list[_Waiter] = []
        # Most callers inside `append` at once (queued + committing) since the writer
        # last took a group; 0 again whenever it finds the queue empty.
        self._peak = 0
        self.groups = 0  # groups handed to `commit` (probes and journal-only ones too)
        self.event_groups = 0  # of which carried at least one event
        self.events = 0  # events in those groups
        self.lingered = 0  # of which the writer waited for a fuller group first
        self.rejections_dropped = 0
        self.restarts = 0  # writer threads replaced after dying
        self._closed = False
        self._death: str | None = None  # why the thread died, until it is replaced
        self.last_write_error: str | None = None
        self.last_write_error_at: float | None = None
        self._probed_at: float | None = None  # monotonic time of the last write probe
        self._probe_lock = threading.Lock()
        # Started by the first write, so a store opened only to read (a CLI query)
        # never starts nor joins a thread.
        self._thread: threading.Thread | None = None

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        thread.start()
        return thread

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
        """Queue a waiter for the next group and block until it is done or times out."""
        with self._cond:
            if self._closed:
                raise StoreClosed("the store is closed")
            self._revive()
            self._appends.append(waiter)
            self._peak = max(self._peak, len(self._appends) + len(self._inflight))
            self._cond.notify()
        if waiter.wait(self.timeout):
            return waiter
        with self._cond:
            if waiter.done():  # finished while this thread took the lock
                return waiter
            try:
                self._appends.remove(waiter)
            except ValueError:
                raise StoreUnavailable(
                    f"the commit did not finish within {self.timeout:g} s; its outcome is "
                    "unknown (a retry is recognised by id)"
                ) from None
        raise StoreUnavailable(
            f"the writer took no group within {self.timeout:g} s; nothing was stored"
        )

    @property
    def queued(self) -> int:
        """Callers waiting for a group to take them (not counting the one committing)."""
        with self._cond:
            return len(self._appends)

    def check_writable(self, *, max_age: float = 1.0) -> str | None:
        """Why appends would fail now, or None; probes with a real write when in doubt.

        A dead writer thread is reported (and replaced). Otherwise the first call, and
        calls while the last write failed, commit a one-row write through the writer
        (at most one probe per `max_age` seconds; the others reuse its answer). So a
        fault present at start-up is reported before any delivery, and a cleared fault
        is noticed without waiting for a delivery to retry.
        """
        with self._cond:
            if self._closed:
                raise StoreClosed("the store is closed")
            death = self._revive()
        if death is not None:
            return death
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
        """Queue a journal row for a refused delivery; dropped (and counted) under flood."""
        with self._cond:
            if self._closed:
                return
            if len(self._rejections) >= _REJECT_QUEUE_MAX:
                self.rejections_dropped += 1
                return
            if self._thread is None:
                self._thread = self._start()
            self._rejections.append((now_ms(), rejection))
            self._cond.notify()

    def close(self) -> bool:
        """Commit what is queued and stop the thread, waiting a bounded time. Idempotent.

        Returns False when the thread did not stop in time (a commit is stuck); the
        callers still queued then get StoreClosed, and the backend must not free what
        `commit` uses.
        """
        with self._cond:
            if self._closed:
                return self._thread is None or not self._thread.is_alive()
            self._closed = True
            self._cond.notify_all()
            if self._thread is None:  # never written through
                return True
        if self.groups:
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
        self._thread.join(max(2 * self.timeout, 1.0))
        if not self._thread.is_alive():
            return True
        log.warning("store writer did not stop within %.1f s (a commit is stuck)", self.timeout)
        with self._cond:
            stranded, self._appends = self._appends, []
        for waiter in stranded:
            waiter.fail(StoreClosed("the store was closed before this append committed"))
        return False

    # -- the writer thread --------------------------------------------------------

    def _revive(self) -> str | None:
        """Under the lock: start a fresh thread if the last one died; returns why it died."""
        if self._closed:
            return None
        if self._thread is None:  # the first write starts it
            self._thread = self._start()
            return None
        if self._death is None and self._thread.is_alive():
            return None
        reason = self._death or "the writer thread is gone"
        self._death = None
        self.restarts += 1
        self.last_write_error, self.last_write_error_at = reason, time.time()
        log.warning("store writer replaced by a fresh thread after: %s", reason)
        self._thread = self._start()
        return reason

    def _run(self) -> None:
        try:
            while self._await():
                try:
                    with self._turn():  # the writers' turn: the group is taken inside it
                        self._commit_group(*self._take())
                except StoreUnavailable as exc:  # from the turn only: a group never raises
                    self._turn_missed(exc)
        except BaseException as exc:  # noqa: BLE001 -- no waiter may hang on a dead thread
            self._died(exc)

    def _await(self) -> bool:
        """Wait for work (and linger for a fuller group); False once closed and drained."""
        with self._cond:
            if not self._appends:
                self._peak = 0  # idle: whoever comes next starts a new count
            while not self._appends and not self._rejections and not self._closed:
                self._cond.wait()
            if self._closed and not self._appends and not self._rejections:
                return False
        # Give up the GIL once: callers the last commit released queue their next
        # appends, and this group takes them all (bigger groups, fewer fsyncs).
        time.sleep(0)
        with self._cond:
            self._linger()
        return True

    def _take(self) -> tuple[list[_Waiter], list[tuple[int, Rejection]]]:
        """The next group and the queued rejections: whatever is queued now.

        Taken once the writer has its turn, so the appends queued while another
        process's writer committed join this group rather than wait for the next.
        """
        with self._cond:
            group, count = [], 0
            while self._appends and count < MAX_GROUP:
                waiter = self._appends.pop(0)
                group.append(waiter)
                count += len(waiter.events)
            rejections, self._rejections = self._rejections, []
            self._inflight = group
            self._peak = len(self._appends) + len(group)
            self.groups += 1
            if count:
                self.event_groups += 1
                self.events += count
        return group, rejections

    def _linger(self) -> None:
        """Under the lock: wait at most `linger` s for callers known to be in flight.

        The target is the most callers seen inside `append` at once since the last
        group was taken, capped at `linger_group`: with one caller it is met already.
        """
        target = min(self.linger_group, self._peak)
        if self.linger <= 0 or len(self._appends) >= target:
            return
        self.lingered += 1
        deadline = time.monotonic() + self.linger
        while len(self._appends) < target and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _commit_group(self, group: list[_Waiter], rejections: list) -> None:
        events = [event for waiter in group for event in waiter.events]
        error: StoreError | None = None
        try:
            results = self._commit(events, rejections, any(w.probe for w in group))
            if len(results) != len(events):
                raise RuntimeError(f"commit returned {len(results)} results for {len(events)}")
        except StoreError as exc:
            error = exc
        except Exception as exc:  # a bug: answer, log, keep the thread
            log.exception("store commit failed with an unexpected error")
            error = StoreError(f"internal store error: {exc!r}")
        if error is None:
            self.last_write_error = None
            start = 0
            for waiter in group:
                end = start + len(waiter.events)
                waiter.results = results[start:end]
                start = end
        else:
            self.last_write_error, self.last_write_error_at = str(error), time.time()
            for waiter in group:
                waiter.results, waiter.error = [], error
        self._inflight = []
        for waiter in group:
            waiter.wake()

    def _turn_missed(self, error: StoreUnavailable) -> None:
        """The turn was not had in time: nothing was taken; the queued callers get `error`.

        The thread lives on, and `check_writable` reports the cause until a group commits.
        """
        log.warning("store writer: %s", error)
        with self._cond:
            stranded, self._appends = self._appends, []
            self.last_write_error, self.last_write_error_at = str(error), time.time()
        for waiter in stranded:
            waiter.fail(error)

    def _died(self, exc: BaseException) -> None:
        """In the dying thread: release every waiter and leave the cause for `_revive`."""
        log.error("store writer thread died", exc_info=exc)
        reason = f"the writer thread died: {exc!r}"
        with self._cond:
            stranded = self._inflight + self._appends
            self._inflight, self._appends = [], []
            self._death = reason
            self.last_write_error, self.last_write_error_at = reason, time.time()
        error = StoreUnavailable(f"{reason}; a fresh one takes the next write")
        for waiter in stranded:
            waiter.fail(error)
