"""The `ikledger` command line: one group, each command a thin adapter.

A command's module is imported only when that command runs (`LAZY_COMMANDS`): start-up
is most of the time of a read command such as `ikledger timeline`, so it never loads
the web stack, the log's commands or the PostgreSQL role tools. `--help` lists every
command from the table below without importing any of them.
"""

from __future__ import annotations

import gc

_collecting = gc.isenabled()
gc.disable()  # while this module imports (see `receiver`); back at its end

import importlib
import sys

import click

from receiver.config import SECRET_HELP, is_loopback
from store import StoreError
from store.lazylog import when_logging

from .common import CONTEXT, db_option, load_config, read_model_failures, store_failure

# name: (module, attribute, the first paragraph of the command's docstring, which its
# line of `ikledger --help` is made from; tests/integration/test_cli.py checks both).
LAZY_COMMANDS = {
    "assets": (
        "receiver.cli.read",
        "assets",
        "Video assets with counts per transformation status, newest activity first.",
    ),
    "backup": (
        "receiver.cli.log",
        "backup",
        (
            "Write a consistent snapshot of the log to PATH as a SQLite log file, while the "
            "server writes."
        ),
    ),
    "check-proof": (
        "receiver.cli.proofs",
        "check_proof",
        "Check a proof offline: signature, path to the root and, with --body, the bytes.",
    ),
    "checkpoint": (
        "receiver.cli.proofs",
        "checkpoint",
        "Print a fresh checkpoint of the log (signed with IKLEDGER_SIGNING_KEY) and keep it.",
    ),
    "db-role": (
        "receiver.cli.db",
        "db_role",
        "Create (--apply) or print the SQL of a PostgreSQL role NAME for receivers.",
    ),
    "destinations": (
        "receiver.cli.forward",
        "destinations",
        "Configure the endpoints every stored event is forwarded to (add, list, show, …).",
    ),
    "erase": (
        "receiver.cli.retention",
        "erase",
        "Remove the body of EVENT_ID at any age, recording why; proofs and verify still hold.",
    ),
    "events": (
        "receiver.cli.log",
        "events",
        "List events in log order, filtered by type, id and created_at range.",
    ),
    "export": (
        "receiver.cli.log",
        "export",
        "Write every event as JSON Lines, raw bodies included.",
    ),
    "failures": (
        "receiver.cli.read",
        "failures",
        "What is failing right now: transformations in error, and those stuck after accepted.",
    ),
    "import": (
        "receiver.cli.log",
        "import_",
        "Backfill events from an `ikledger export` file; safe to run again.",
    ),
    "keys": (
        "receiver.cli.proofs",
        "keys",
        "Create the Ed25519 key that signs checkpoints.",
    ),
    "projections": (
        "receiver.cli.read",
        "projections_",
        "Each projection's version, checkpoint, lag behind the log and last error.",
    ),
    "prove": (
        "receiver.cli.proofs",
        "prove",
        "Print the JSON proof that EVENT_ID is in the log (or, --from-size, that it only grew).",
    ),
    "prune": (
        "receiver.cli.retention",
        "prune",
        "Remove the bodies of events received before TIME; proofs and verify still hold.",
    ),
    "rebuild": (
        "receiver.cli.read",
        "rebuild",
        "Replay the whole log into fresh read models and swap them in atomically.",
    ),
    "replay": (
        "receiver.cli.forward",
        "replay",
        "Send the selected events to destination NAME again, as a durable, throttled job.",
    ),
    "secret": (
        "receiver.cli.secret",
        "secret",
        "Print a fresh random webhook secret (whsec_…) for a local receiver.",
    ),
    "show": (
        "receiver.cli.log",
        "show",
        "Print the raw body of event EVENT_ID exactly as it was received.",
    ),
    "stats": (
        "receiver.cli.stats",
        "stats",
        "Events by type, transformations by status, errors by reason, accepted-to-ready times.",
    ),
    "status": (
        "receiver.cli.log",
        "status",
        "Events, last position, head of the chain, deliveries by outcome, database size.",
    ),
    "timeline": (
        "receiver.cli.read",
        "timeline",
        "What happened to the video at URL: its transformations, their status, times and errors.",
    ),
    "trigger": (
        "receiver.cli.log",
        "trigger",
        "Sign a realistic event with the configured secret and POST it, as ImageKit would.",
    ),
    "verify": (
        "receiver.cli.log",
        "verify",
        "Recompute the hash chain from the first event; exit 1 naming the first bad position.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands (`lazy_commands`: name → module, attribute, summary) are
    imported when they are looked up to run, not when the group is built."""

    def __init__(self, *args, lazy_commands: dict[str, tuple[str, str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            module, attribute, _ = self.lazy_commands[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.NoSuchCommand as exc:
            # Suggest among every command ("Did you mean …?"), not only the loaded ones.
            raise click.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Click's own listing, over the loaded commands and, for the others, stand-ins
        # that carry only the summary their line is made from.
        listed = {
            name: self.commands.get(name) or click.Command(name, help=self.lazy_commands[name][2])
            for name in self.list_commands(ctx)
        }
        click.Group(self.name, commands=listed).format_commands(ctx, formatter)


@click.group(cls=LazyGroup, lazy_commands=LAZY_COMMANDS, context_settings=CONTEXT)
@click.version_option(package_name="ikledger")
def cli() -> None:
    """ikledger: a durable, tamper-evident log of ImageKit webhooks, and read models over it.

    Settings come from the environment (IMAGEKIT_WEBHOOK_SECRET, IKLEDGER_DB,
    IKLEDGER_PROJECTIONS_DB, IKLEDGER_DB_TIMEOUT, …; see docs/configuration.md); options
    override them.
    """
    # A command's failure is its one `Error:` line: what the store and the read models
    # log on the way (a damaged page, a projection's retry) is for a server's log,
    # which `serve` configures, not for the terminal of a one-off command. A read
    # command that logs nothing never imports `logging` (store.lazylog).
    when_logging(_quiet_logs)


def _quiet_logs() -> None:
    import logging

    for name in ("ikledger", "projections"):
        logging.getLogger(name).addHandler(logging.NullHandler())


@cli.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to bind.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Request processes on the one port and log (IKLEDGER_WORKERS) [default: one per "
    "core]. 1: this process answers the requests itself.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Waitress threads per request process (IKLEDGER_THREADS; each request waits for "
    "its group's commit in one) [default: 16 in all, 16 / workers each, at least 4].",
)
@click.option(
    "--catch-up",
    "catch_up",
    type=click.Choice(["process", "thread"]),
    default="process",
    show_default=True,
    help="Keep the read models current from a child process, or from a thread of this one.",
)
@click.option(
    "--rebuild-read-models",
    "rebuild_read_models",
    is_flag=True,
    help="Read models built from another log: empty them and rebuild them from this log "
    "(without it, serve refuses to start on them).",
)
@db_option
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="Logging level.",
)
def serve(
    host: str,
    port: int,
    workers: int | None,
    threads: int | None,
    catch_up: str,
    rebuild_read_models: bool,
    db: str | None,
    log_level: str,
) -> None:
    """Run the receiver (POST /webhook) and the query API with waitress.

    By default one request process runs per core (--workers), all on one port and one
    log, started and restarted by this process, which answers no request itself; a
    child keeps the read models current, another forwards the events to the destinations
    (`ikledger destinations`). All of them stop with this process. With --workers 1 this
    process answers the requests and the two children are the only others.
    The read models live in IKLEDGER_PROJECTIONS_DB; by default beside a SQLite log
    (X.db: X.projections.db), else ikledger-<log id>.projections.db in the working
    directory. Read models of another log stop serve with an error, unless
    --rebuild-read-models. After an unclean stop the log and read models are checked
    (SQLite's quick_check) and serve refuses to start on damage.
    """
    from receiver import logs
    from receiver.runtime import supervisor

    config = load_config(db=db, workers=workers, threads=threads)
    workers = supervisor.default_workers() if config.workers is None else config.workers
    threads = supervisor.default_threads(workers) if config.threads is None else config.threads
    if not config.secrets:
        raise click.UsageError(SECRET_HELP)
    if config.signing_key:
        from receiver.checkpoints import SigningKeyError, load_signer

        try:
            load_signer(config.signing_key)  # the catch-up child signs; refuse a bad key now
        except SigningKeyError as exc:
            raise click.UsageError(str(exc)) from None
    if not is_loopback(host) and not config.read_token:
        raise click.UsageError(
            f"refusing to bind {host} without IKLEDGER_READ_TOKEN: the query API would be open "
            "to the network. Set a read token, or bind 127.0.0.1."
        )
    logs.configure(log_level, config.log_format)
    supervisor.quiet_waitress_queue()
    if workers > 1:
        try:
            with read_model_failures(config):
                supervisor.run(
                    config,
                    host=host,
                    port=port,
                    workers=workers,
                    threads=threads,
                    catch_up=catch_up,
                    log_level=log_level.upper(),
                    adopt=rebuild_read_models,
                    announce=lambda where: click.echo(
                        f"ikledger: listening on http://{host}:{port} (log {where}, "
                        f"{workers} request processes)",
                        err=True,
                    ),
                )
        except StoreError as exc:
            raise store_failure(exc) from None
        except supervisor.CannotListen as exc:
            raise click.ClickException(str(exc)) from None
        return
    import waitress

    from receiver.runtime.wiring import open_runtime

    try:
        with read_model_failures(config):
            runtime = open_runtime(
                config,
                catch_up=catch_up,
                log_level=log_level.upper(),
                starting=True,
                adopt=rebuild_read_models,
                forward=True,
            )
    except StoreError as exc:
        raise store_failure(exc) from None
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    where = runtime.store.display_name
    click.echo(f"ikledger: listening on http://{host}:{port} (log {where})", err=True)
    try:
        waitress.serve(
            runtime.app, host=host, port=port, **supervisor.waitress_options(config, threads)
        )
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()


if _collecting:
    gc.freeze()  # what was imported stays out of the collections from now on
    gc.enable()


def main() -> None:
    # Everything the imports built (modules, classes, the commands) lives until the
    # process exits: gc.freeze() moves it out of the collector's sight, so neither the
    # collections while a command runs nor those at exit walk it again (measured: about
    # -10% of the wall time of `ikledger timeline`).
    gc.freeze()
    cli(prog_name="ikledger")
