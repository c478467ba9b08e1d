"""The production composition root: store, read models, catch-up and app from a Config.

`ikledger serve` and `get_app()` (for any other WSGI server) both build through
`open_runtime`, so they run the same wiring. They differ in where the read models are
caught up: `serve` asks for a child process (`receiver.runtime.catchup`, started by its
handle in `receiver.runtime.handles`), so the request process spends nothing on it;
`get_app()` keeps a catch-up thread in the process, because a WSGI server may fork or
start it several times and each copy would start a child of its own. The request
processes of `serve --workers N` (`receiver.runtime.supervisor`) ask for no catch-up:
their supervisor runs it, and they report its state from what the supervisor shares.
Tests build apps with `create_app`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from receiver.config import Config
from store import EventStore, open_store

if TYPE_CHECKING:  # the web stack, the read models and the children load only when used
    import falcon

    import projections

    from .handles import ForwarderChild, Projector

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
            import shutil  # only serve's own runtime has a folder to remove

            shutil.rmtree(self.stats_dir, ignore_errors=True)
        if self.catch_up is not None:
            self.catch_up.stop()
        self.views.close()
        self.store.close()


def open_log_store(config: Config) -> EventStore:
    """The log (migrated if need be). Raises StoreError when it cannot be opened."""
    return open_store(config.db, timeout=config.db_timeout, rejected_keep=config.rejected_keep)


def for_log(config: Config, store: EventStore) -> Config:
    """`config` with the read models' file of the opened `store` decided (and kept).

    What `serve` hands its children (`Config.child_env`), so every process of one
    server uses the file this one decided, whatever its working directory.
    """
    return replace(config, projections_db=os.path.abspath(config.projections_path(store.log_id())))


def open_read_models(
    config: Config, store: EventStore, *, adopt: bool = False
) -> projections.ProjectionDB:
    """The read models of `store` (migrated if need be); raises the read models' errors.

    The file is IKLEDGER_PROJECTIONS_DB, else the log's own (`Config.projections_path`).
    A file built from another log raises ReadModelOfAnotherLog, unless `adopt`: it is
    then emptied and bound to `store` (the runner rebuilds it).
    """
    import projections

    return projections.open_projections(store, config.projections_path(store.log_id()), adopt=adopt)


def open_log(config: Config, *, adopt: bool = False) -> tuple[EventStore, projections.ProjectionDB]:
    """The log and its read models; nothing is left open on failure.

    Raises StoreError when the log cannot be opened, and the read models' errors
    (`adopt`: see `open_read_models`).
    """
    store = open_log_store(config)
    try:
        return store, open_read_models(config, store, adopt=adopt)
    except BaseException:
        store.close()
        raise


def check_after_unclean_stop(store: EventStore, views: projections.ProjectionDB) -> None:
    """When the log was not closed cleanly last time, look for damage in it and its read models.

    Raises StoreCorrupt or ReadModelCorrupt naming the file and what was found, so a
    server refuses to start on a damaged file rather than serve or extend it. Costs
    nothing after a clean stop; linear in the files' sizes after a crash.
    """
    if store.last_close_clean():
        return
    import projections
    from store import StoreCorrupt

    found = _one_line(store.quick_check())
    if found is not None:  # the CLI adds the way on (`ikledger verify`)
        raise StoreCorrupt(f"the check of {store.display_name} after an unclean stop: {found}")
    found = _one_line(views.quick_check())
    if found is not None:
        raise projections.ReadModelCorrupt(
            f"the check of the read models in {views.path} after an unclean stop: {found}; "
            "remove the file (and its -wal and -shm) and they are rebuilt from the log "
            "(`ikledger rebuild`)"
        )


def _one_line(found: str | None) -> str | None:
    """What a check found, on one line (SQLite's report spans several): an `Error:` line."""
    return None if found is None else " ".join(found.split())


def open_server_log(
    config: Config, *, adopt: bool = False
) -> tuple[Config, EventStore, projections.ProjectionDB]:
    """What a server opens at start-up: the log, its read models, and `config` for them.

    The read models of another log are refused unless `adopt` (they are then rebuilt);
    a log or read models left by a crash are checked first (`check_after_unclean_stop`).
    The configuration returned has the read models' file decided (`for_log`), for the
    server's children. Nothing is left open on failure.
    """
    store, views = open_log(config, adopt=adopt)
    try:
        check_after_unclean_stop(store, views)
        return for_log(config, store), store, views
    except BaseException:
        views.close()
        store.close()
        raise


def open_runtime(
    config: Config,
    *,
    catch_up: CatchUp = "thread",
    log_level: str = "INFO",
    projector=None,
    starting: bool = False,
    adopt: bool = False,
    forward: bool = False,
    forwarder=None,
) -> Runtime:
    """Open the log and its read models, start catching up, and build the app.

    `catch_up="process"` runs the catch-up in a child process that `/healthz` reports
    on (`projector`) and that is restarted when it dies; `"thread"` in this process;
    None not at all (another process does; `projector`, anything with `status()`,
    is then what `/healthz` reports of it). `starting`: the first process of a server,
    which checks the files after a crash and may `adopt` (see `open_server_log`).
    `forward` also starts the forwarding child (`receiver.runtime.forwarder`), which
    `/healthz` reports on; without it, `forwarder` (anything with `status()`) is what
    `/healthz` reports of the one another process runs.
    Raises StoreError when the log cannot be opened; nothing is left open then.
    """
    import projections
    from receiver.http.app import create_app

    stats_dir = None
    if forward:  # the forwarding child's attempt counts, for /metrics
        import shutil
        import tempfile  # serve only: the commands never start a forwarder

        stats_dir = tempfile.mkdtemp(prefix="ikledger-forward-")
        config = replace(config, forwarder_stats=os.path.join(stats_dir, "attempts.json"))
    try:
        if starting:
            config, store, views = open_server_log(config, adopt=adopt)
        else:
            store, views = open_log(config)
            config = for_log(config, store)
    except BaseException:
        if stats_dir:
            shutil.rmtree(stats_dir, ignore_errors=True)
        raise
    from .handles import ForwarderChild, Projector

    child = None
    if forward:
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
        runner = projections.ProjectionRunner(views, projections.chosen(config.projections))
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


def get_app(config: Config | None = None) -> falcon.App:
    """The production app, configured from the environment (for any WSGI server).

    Keeps the read models current with a background catch-up thread for the life of
    the process (not a child process: see the module docstring). Refuses, as `serve`
    does, to run without a webhook secret (ConfigError).

    What it cannot check: the address its server binds (the server never says), so
    without IKLEDGER_READ_TOKEN it cannot refuse a public bind up front as `serve`
    does; instead every request to the query API or the pages from a peer that is not
    on the loopback interface is refused (403, `receiver.http.guard`). Behind a reverse
    proxy on the same host every peer looks local: set a read token there. `config`
    (default: `Config.from_env()`) is for tests.
    """
    from receiver.config import SECRET_HELP, ConfigError

    config = Config.from_env() if config is None else config
    if not config.secrets:
        raise ConfigError(SECRET_HELP)
    return guarded(open_runtime(config))


def guarded(runtime: Runtime) -> falcon.App:
    """`runtime.app` with what `get_app` checks per request (`receiver.http.guard`)."""
    if runtime.config.read_token is None:
        from receiver.http.guard import LoopbackOnly

        runtime.app.add_middleware(LoopbackOnly())
    return runtime.app
