"""The production composition root: store, read models, catch-up thread and app from a Config.

`ikledger serve` and `get_app()` (for any other WSGI server) both build through
`open_runtime`, so they run the same wiring. Tests build apps with `create_app`.
"""

from __future__ import annotations

from dataclasses import dataclass

import falcon

import projections
from store import EventStore, open_store

from .app import create_app
from .config import Config


@dataclass
class Runtime:
    """Everything a running receiver holds open; `close()` releases it in order."""

    config: Config
    store: EventStore
    views: projections.ProjectionDB
    runner: projections.ProjectionRunner
    app: falcon.App

    def close(self) -> None:
        """Stop the catch-up thread, then close the read models and the log."""
        self.runner.stop()
        self.views.close()
        self.store.close()


def open_runtime(config: Config) -> Runtime:
    """Open the log and its read models, start catching up, and build the app.

    Raises StoreError when the log cannot be opened; nothing is left open then.
    """
    store = open_store(config.db, timeout=config.db_timeout, rejected_keep=config.rejected_keep)
    try:
        views = projections.open_projections(store, config.projections_path())
    except BaseException:
        store.close()
        raise
    runner = projections.ProjectionRunner(views)
    runner.start()
    return Runtime(config, store, views, runner, create_app(config, store, views))


def get_app() -> falcon.App:
    """The production app, configured from the environment (for any WSGI server).

    Keeps the read models current with a background catch-up thread for the life of
    the process.
    """
    return open_runtime(Config.from_env()).app
