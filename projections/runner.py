"""Keep projections current: `ProjectionRunner(db, projections).start()` / `.stop()`.

- `catch_up()`: synchronous, for the CLI and tests; returns events applied per name.
- `start()`: a daemon thread polls the log every `poll_interval` seconds and applies
  new events; `stop()` ends it and joins it.
- `rebuild(name=None, progress=None)`: rebuild one projection (or all) now.
- `status()`: see `queries.projection_status`.

On first use each projection is checked (`engine.ensure`) and rebuilt automatically
when its code version changed or the log it was built from was replaced. A failing
projection is retried with exponential backoff; the others keep going. Nothing here
ever writes to the log, so ingest never waits on or fails because of a projection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Self

from . import engine
from .db import ProjectionDB
from .framework import Projection, UnknownProjection
from .queries import projection_status
from .video_timeline import TIMELINE

log = logging.getLogger(__name__)

DEFAULT_PROJECTIONS: tuple[Projection, ...] = (TIMELINE,)


class ProjectionRunner:
    """Catch-up loop over a set of projections of one `ProjectionDB`."""

    def __init__(
        self,
        db: ProjectionDB,
        projections: Sequence[Projection] = DEFAULT_PROJECTIONS,
        *,
        poll_interval: float = 0.05,
        batch_size: int = 2000,
        backoff: tuple[float, float] = (0.1, 30.0),
        clock: Callable[[], float] = time.monotonic,
    ):
        self.db = db
        self.projections = {p.name: p for p in projections}
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.backoff = backoff
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
        reason = engine.ensure(self.db, projection)
        if reason is not None:
            log.warning("rebuilding projection %s: %s", projection.name, reason)
            engine.rebuild(self.db, projection)
        self._ensured.add(projection.name)

    def _step(self, projection: Projection) -> int:
        """Ensure and catch up one projection; failures are recorded, never raised."""
        name = projection.name
        try:
            self._ensure(projection)
            applied = engine.catch_up_safely(self.db, projection, batch_size=self.batch_size)
        except engine.PoisonEvent as exc:
            log.error("%s", exc)
            self._fail(name)
            return 0
        except Exception as exc:  # noqa: BLE001 - transient or a bug: keep the others going
            log.warning("projection %s failed: %r", name, exc)
            self._fail(name)
            try:
                engine.record_error(self.db, name, f"{type(exc).__name__}: {exc}")
            except Exception:
                log.exception("cannot record the failure of projection %s", name)
            return 0
        self._failures.pop(name, None)
        self._retry_at.pop(name, None)
        return applied

    def _fail(self, name: str) -> None:
        failures = self._failures.get(name, 0) + 1
        self._failures[name] = failures
        first, cap = self.backoff
        self._retry_at[name] = self.clock() + min(cap, first * 2 ** (failures - 1))

    def catch_up(self) -> dict[str, int]:
        """Apply every event now in the log to every projection; errors are recorded.

        Ignores backoff: an explicit call always tries again.
        """
        with self._lock:
            return {name: self._step(p) for name, p in self.projections.items()}

    def poll_once(self) -> dict[str, int]:
        """One pass of the background loop: like `catch_up` but honouring backoff."""
        applied = {}
        with self._lock:
            for name, projection in self.projections.items():
                if self.clock() < self._retry_at.get(name, 0.0):
                    continue
                applied[name] = self._step(projection)
        return applied

    def rebuild(
        self, name: str | None = None, *, progress: engine.ProgressFn | None = None
    ) -> dict[str, int]:
        """Rebuild one projection by name, or all; returns events applied per name."""
        chosen = [self._get(name)] if name is not None else list(self.projections.values())
        done = {}
        with self._lock:
            for projection in chosen:
                done[projection.name] = engine.rebuild(self.db, projection, progress=progress)
                self._ensured.add(projection.name)
                self._failures.pop(projection.name, None)
                self._retry_at.pop(projection.name, None)
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # never let the thread die silently
                log.exception("projection runner pass failed")
            self._stop.wait(self.poll_interval)

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
