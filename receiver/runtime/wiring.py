"""The production composition root: store, read models, catch-up and app from a Config.

`ikledger serve` and `get_app()` (for any other WSGI server) both build through
`open_runtime`, so they run the same wiring. They differ in where the read models
are caught up: `serve` asks for a child process (`receiver.runtime.catchup`), so the
request process spends nothing on it; `get_app()` keeps a catch-up thread in the
process, because a WSGI server may fork or start it several times and each copy
would start a child of its own. The request processes of `serve --workers N`
(`receiver.runtime.supervisor`) ask for no catch-up: their supervisor runs it, and they
report its state from what the supervisor shares. Tests build apps with `create_app`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from receiver.config import Config
from store import EventStore, open_store

if TYPE_CHECKING:  # the web stack and the read models load only when used
    import falcon

    import projections

    from .catchup import Projector
    from .forwarder import ForwarderChild

CatchUp = Literal["process", "thread"] | None


@dataclass
class Runtime:
    """Everything a running receiver holds open; `close()` releases it in order."""

    config: Config
    store: EventStore
    views: projections.ProjectionDB
    catch_up: projections.ProjectionRunner | Projector | None
    app: falcon.App
    forwarder: ForwarderChild | None = None
    stats_dir: str | None = None  # the forwarder's attempt counts (removed on close)

    def close(self) -> None:
        """Stop the forwarder and the catch-up, then close the read models and the log."""
        if self.forwarder is not None:
            self.forwarder.stop()
        if self.stats_dir is not None:
            shutil.rmtree(self.stats_dir, ignore_errors=True)
        if self.catch_up is not None:
            self.catch_up.stop()
        self.views.close()
        self.store.close()


def open_log_store(config: Config) -> EventStore:
    """The log (migrated if need be). Raises StoreError when it cannot be opened."""
    return open_store(config.db, timeout=config.db_timeout, rejected_keep=config.rejected_keep)


def open_read_models(config: Config, store: EventStore) -> projections.ProjectionDB:
    """The read models of `store` (migrated if need be); raises the read models' errors."""
    import projections

    return projections.open_projections(store, config.projections_path())


def open_log(config: Config) -> tuple[EventStore, projections.ProjectionDB]:
    """The log and its read models; nothing is left open on failure.

    Raises StoreError when the log cannot be opened, and the read models' errors.
    """
    store = open_log_store(config)
    try:
        return store, open_read_models(config, store)
    except BaseException:
        store.close()
        raise


def open_runtime(
    config: Config,
    *,
    catch_up: CatchUp = "thread",
    log_level: str = "INFO",
    projector=None,
    forward: bool = False,
    forwarder=None,
) -> Runtime:
    """Open the log and its read models, start catching up, and build the app.

    `catch_up="process"` runs the catch-up in a child process that `/healthz` reports
    on (`projector`) and that is restarted when it dies; `"thread"` in this process;
    None not at all (another process does; `projector`, anything with `status()`,
    is then what `/healthz` reports of it).
    `forward` also starts the forwarding child (`receiver.runtime.forwarder`), which
    `/healthz` reports on; without it, `forwarder` (anything with `status()`) is what
    `/healthz` reports of the one another process runs.
    Raises StoreError when the log cannot be opened; nothing is left open then.
    """
    import projections
    from receiver.http.app import create_app

    from .catchup import Projector

    stats_dir = None
    if forward:  # the forwarding child's attempt counts, for /metrics
        stats_dir = tempfile.mkdtemp(prefix="ikledger-forward-")
        config = replace(config, forwarder_stats=os.path.join(stats_dir, "attempts.json"))
    try:
        store, views = open_log(config)
    except BaseException:
        if stats_dir:
            shutil.rmtree(stats_dir, ignore_errors=True)
        raise
    child = None
    if forward:
        from .forwarder import ForwarderChild

        child = ForwarderChild(config, log_level=log_level)
        forwarder = child
    reported = {"forwarder": forwarder}
    if catch_up is None:
        app = create_app(config, store, views, projector=projector, **reported)
        runner = None
    elif catch_up == "process":
        runner = Projector(config, log_level=log_level)
        app = create_app(config, store, views, projector=runner, **reported)
    else:
        runner = projections.ProjectionRunner(views)
        app = create_app(config, store, views, **reported)
    runtime = Runtime(config, store, views, None, app, stats_dir=stats_dir)
    try:
        if runner is not None:
            runner.start()
            runtime.catch_up = runner
        if child is not None:
            child.start()
            runtime.forwarder = child
    except BaseException:  # a child that cannot be started: nothing is left open
        runtime.close()
        raise
    return runtime


def get_app() -> falcon.App:
    """The production app, configured from the environment (for any WSGI server).

    Keeps the read models current with a background catch-up thread for the life of
    the process (not a child process: see the module docstring).
    """
    return open_runtime(Config.from_env()).app
