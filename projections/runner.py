"""Keep projections current: `ProjectionRunner(db, projections).start()` / `.stop()`.

- `catch_up()`: synchronous, for the CLI and tests; returns events applied per name.
  A damaged log (`StoreCorrupt`), a damaged projections file (`ReadModelCorrupt`) or
  a file adopted by another log (`ReadModelOfAnotherLog`) is raised once every
  projection was tried: the read models are then no answer to give.
- `start()`: a daemon thread catches up, then sleeps on the store (`store.wait`)
  until a new position is readable, at most `idle_wait` seconds so that `stop()`
  and due retries are prompt; `stop()` ends it and joins it.
- `rebuild(name=None, progress=None)`: rebuild one projection (or all) now.
- `status()`: see `queries.projection_status`.

On first use each projection is checked (`checkpoints.ensure`) and rebuilt
automatically when its code version changed or the log it was built from was
replaced. A failing projection is retried with exponential backoff and the others
keep going: `backoff` after a poison event or a transient failure, the longer
`defect_backoff` after a defect (see `failures`), which no quick retry would fix.
Nothing here ever writes to the log, so ingest never waits on or fails because of
a projection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Self

from store import StoreCorrupt
from store.lazylog import lazy_logger

from .catchup import catch_up_safely
from .checkpoints import ensure, record_error
from .db import ProjectionDB
from .event_types import EVENT_TYPES
from .failures import Kind, classify
from .framework import Projection, ReadModelCorrupt, ReadModelOfAnotherLog, UnknownProjection
from .search_index import SEARCH
from .status import projection_status
from .video_timeline import TIMELINE

if TYPE_CHECKING:
    from .rebuild import ProgressFn

log = lazy_logger(__name__)

# Failures of the whole log or file, not of one projection: `catch_up` raises them.
FATAL = (StoreCorrupt, ReadModelCorrupt, ReadModelOfAnotherLog)

# The overview's read models of every event (issue 21).
OVERVIEW_PROJECTIONS: tuple[Projection, ...] = (EVENT_TYPES, SEARCH)
DEFAULT_PROJECTIONS: tuple[Projection, ...] = (TIMELINE, *OVERVIEW_PROJECTIONS)


def chosen(names: Sequence[str] | None) -> tuple[Projection, ...]:
    """The default projections named in `names`, in their default order; None: every one.

    Raises UnknownProjection naming the known ones when a name is not one of them. A
    projection left out is neither caught up nor rebuilt: its tables stay as they were,
    and its queries answer from them (or nothing, when it was never built).
    """
    if names is None:
        return DEFAULT_PROJECTIONS
    known = {p.name for p in DEFAULT_PROJECTIONS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UnknownProjection(
            f"no projection named {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(p.name for p in DEFAULT_PROJECTIONS)}"
        )
    return tuple(p for p in DEFAULT_PROJECTIONS if p.name in names)


class ProjectionRunner:
    """Catch-up loop over a set of projections of one `ProjectionDB`."""

    def __init__(
        self,
        db: ProjectionDB,
        projections: Sequence[Projection] = DEFAULT_PROJECTIONS,
        *,
        idle_wait: float = 0.5,
        batch_size: int = 2000,
        pass_budget: float | None = 0.1,
        backoff: tuple[float, float] = (0.1, 30.0),
        defect_backoff: tuple[float, float] = (30.0, 600.0),
        clock: Callable[[], float] = time.monotonic,
    ):
        self.db = db
        self.projections = {p.name: p for p in projections}
        self.idle_wait = idle_wait
        self.batch_size = batch_size
        # The background loop's time per projection per pass (None: up to the head): the
        # search index catching up a backlog must not keep the timeline from being fresh.
        self.pass_budget = pass_budget
        self.backoff = backoff
        self.defect_backoff = defect_backoff
        self.clock = clock
        self._ensured: set[str] = set()
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one catch-up or rebuild at a time in this process

    def _get(self, name: str) -> Projection:
        try:
            return self.projections[name]
        except KeyError:
            raise UnknownProjection(f"no projection named {name!r}") from None

    def _ensure(self, projection: Projection) -> None:
        if projection.name in self._ensured:
            return
        reason = ensure(self.db, projection)
        if reason is not None:
            log.warning("rebuilding projection %s: %s", projection.name, reason)
            from .rebuild import rebuild  # the bulk machinery only when a rebuild is due

            rebuild(self.db, projection)
        self._ensured.add(projection.name)

    def _step(
        self,
        projection: Projection,
        fatal: list[Exception] | None = None,
        budget: float | None = None,
    ) -> int:
        """Ensure and catch up one projection; failures are recorded, never raised.

        A FATAL failure is also appended to `fatal`, when given.
        """
        name = projection.name
        try:
            self._ensure(projection)
            applied = catch_up_safely(
                self.db, projection, batch_size=self.batch_size, budget=budget
            )
        except Exception as exc:  # noqa: BLE001 - recorded and retried; the others keep going
            self._failed(projection, exc)
            if fatal is not None and isinstance(exc, FATAL):
                fatal.append(exc)
            return 0
        self._failures.pop(name, None)
        self._retry_at.pop(name, None)
        return applied

    def _failed(self, projection: Projection, exc: Exception) -> None:
        """Log, record and schedule the next try as the failure's kind says."""
        name, kind = projection.name, classify(exc, projection)
        if kind is Kind.POISON:  # catch-up recorded it, with the event
            self._fail(name, self.backoff)
            log.error("%s", exc)
            return
        if kind is Kind.TRANSIENT:
            delay = self._fail(name, self.backoff)
            log.warning("projection %s: %s; retrying in %.1f s", name, exc, delay)
        elif isinstance(exc, FATAL):  # its message says it all: no traceback
            delay = self._fail(name, self.defect_backoff)
            log.error("projection %s: %s; retrying in %.0f s", name, exc, delay)
            log.debug("projection %s failed", name, exc_info=exc)
        else:
            delay = self._fail(name, self.defect_backoff)
            log.error("projection %s: defect; retrying in %.0f s", name, delay, exc_info=exc)
        self._record(name, exc)

    def _record(self, name: str, exc: Exception) -> None:
        try:
            record_error(self.db, name, f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("cannot record the failure of projection %s", name)

    def _fail(self, name: str, backoff: tuple[float, float]) -> float:
        """Schedule the next try of `name`; returns the delay in seconds."""
        failures = self._failures.get(name, 0) + 1
        self._failures[name] = failures
        first, cap = backoff
        delay = min(cap, first * 2 ** (failures - 1))
        self._retry_at[name] = self.clock() + delay
        return delay

    def catch_up(self) -> dict[str, int]:
        """Apply every event now in the log to every projection; errors are recorded.

        Ignores backoff: an explicit call always tries again. Raises the first FATAL
        failure (damaged log or file, file of another log) after trying them all.
        """
        fatal: list[Exception] = []
        with self._lock:
            applied = {name: self._step(p, fatal) for name, p in self.projections.items()}
        if fatal:
            raise fatal[0]
        return applied

    def poll_once(self) -> dict[str, int]:
        """One pass of the background loop: like `catch_up` but honouring backoff."""
        applied = {}
        with self._lock:
            for name, projection in self.projections.items():
                if self.clock() < self._retry_at.get(name, 0.0):
                    continue
                applied[name] = self._step(projection, budget=self.pass_budget)
        return applied

    def rebuild(
        self, name: str | None = None, *, progress: ProgressFn | None = None
    ) -> dict[str, int]:
        """Rebuild one projection by name, or all; returns events applied per name."""
        from .rebuild import rebuild

        chosen = [self._get(name)] if name is not None else list(self.projections.values())
        done = {}
        with self._lock:
            for projection in chosen:
                done[projection.name] = rebuild(self.db, projection, progress=progress)
                self._ensured.add(projection.name)
                self._failures.pop(projection.name, None)
                self._retry_at.pop(projection.name, None)
        return done

    def _run(self) -> None:
        store = self.db.store
        while not self._stop.is_set():
            try:
                # Read before the pass: an event appended during it wakes the wait at once.
                seen = store.last_position()
                if not any(self.poll_once().values()):  # a busy pass may have more to do
                    store.wait(seen, self._idle_timeout())
            except Exception:  # never let the thread die silently, nor spin
                log.exception("projection runner pass failed")
                self._stop.wait(self.idle_wait)

    def _idle_timeout(self) -> float:
        """How long to sleep on the store: `idle_wait`, or less when a retry is due."""
        due = min(self._retry_at.values(), default=None)
        if due is None:
            return self.idle_wait
        return min(self.idle_wait, max(due - self.clock(), 0.0))

    def start(self) -> None:
        """Start the background catch-up thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ikledger-projections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the background thread and wait for it; a pass in progress completes first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> list[dict]:
        return projection_status(self.db, list(self.projections))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
