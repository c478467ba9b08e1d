"""The `ikledger` command line: one group, each command a thin adapter."""

from __future__ import annotations

import logging
import signal
import sys

import click
import orjson

from store import StoreError

from . import cli_db, cli_read
from .cli_common import (
    CONTEXT,
    db_option,
    load_config,
    opened_store,
    read_model_failures,
)
from .config import SECRET_HELP


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="ikledger")
def cli() -> None:
    """ikledger: a durable, tamper-evident log of ImageKit webhooks, and read models over it.

    Settings come from the environment (IMAGEKIT_WEBHOOK_SECRET, IKLEDGER_DB,
    IKLEDGER_PROJECTIONS_DB, IKLEDGER_DB_TIMEOUT, …; see the README); options override them.
    """


# Connections that keep every descriptor of the process under select()'s 1024, with
# room for the log's and read models' files of each worker thread.
SELECT_SAFE_CONNECTIONS = 900


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# Waitress 3 flushes from the worker thread on every write (send_bytes=1): the headers,
# then the body, each a send() and a wake-up of the main loop. Buffering up to 256 KiB
# (the largest timeline answer is ~200 KB) lets the main loop send the answer in one
# flush (measured: CPU per GET /timeline -41% with the whole-answer cache).
SEND_BYTES = 256 * 1024


def _one_flush_per_answer() -> dict:
    """`send_bytes`, deprecated since waitress 1.3 with no replacement: passed while the
    installed waitress still has it, without its DeprecationWarning."""
    import warnings

    from waitress.adjustments import Adjustments

    if not hasattr(Adjustments, "send_bytes"):
        return {}
    warnings.filterwarnings("ignore", "send_bytes will be removed", DeprecationWarning)
    return {"send_bytes": SEND_BYTES}


@cli.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to bind.")
@click.option(
    "--threads",
    default=16,
    show_default=True,
    type=int,
    help="Waitress worker threads (each request waits for its group's commit in one).",
)
@click.option(
    "--catch-up",
    "catch_up",
    type=click.Choice(["process", "thread"]),
    default="process",
    show_default=True,
    help="Keep the read models current from a child process, or from a thread of this one.",
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
    host: str, port: int, threads: int, catch_up: str, db: str | None, log_level: str
) -> None:
    """Run the receiver (POST /webhook) and the query API with waitress.

    By default two processes run: this one answers requests, and a child it starts
    (and restarts) keeps the read models current; the child exits with it. The read
    models live in IKLEDGER_PROJECTIONS_DB; by default beside a log given as a path
    (X.db: X.projections.db), else ikledger.projections.db in the working directory.
    """
    import waitress

    config = load_config(db=db, host=host, port=port, threads=threads)
    if not config.secrets:
        raise click.UsageError(SECRET_HELP)
    if not is_loopback(host) and not config.read_token:
        raise click.UsageError(
            f"refusing to bind {host} without IKLEDGER_READ_TOKEN: the query API would be open "
            "to the network. Set a read token, or bind 127.0.0.1."
        )
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # Waitress warns on every request that finds its task queue non-empty; under load
    # that is a line per request, costing more than the request. Latency and request
    # counts are in /metrics instead.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    from .wiring import open_runtime

    try:
        with read_model_failures(config):
            runtime = open_runtime(config, catch_up=catch_up, log_level=log_level.upper())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    where = runtime.store.display_name
    click.echo(f"ikledger: listening on http://{host}:{port} (log {where})", err=True)
    try:
        waitress.serve(
            runtime.app,
            host=host,
            port=port,
            threads=threads,
            ident="ikledger",
            # Bodies far over the limit are refused by waitress before they are buffered.
            max_request_body_size=2 * config.max_body,
            clear_untrusted_proxy_headers=True,
            # Idle or trickling clients hold a connection, never a worker thread; past
            # waitress's default of 100 they would stop new connections being accepted.
            connection_limit=config.connection_limit,
            channel_timeout=config.idle_timeout,
            cleanup_interval=max(1, min(30, config.idle_timeout // 2)),
            # select() fails past descriptor 1024 but costs less per loop than
            # waitress's poll(), which re-registers every channel each time round.
            asyncore_use_poll=config.connection_limit > SELECT_SAFE_CONNECTIONS,
            _quiet=True,
            **_one_flush_per_answer(),
        )
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()


@cli.command(context_settings=CONTEXT)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(db: str | None, as_json: bool) -> None:
    """Events, last position, head of the chain, deliveries by outcome, database size."""
    config = load_config(db=db)
    with opened_store(config) as store:
        stats = store.stats()
        where = store.display_name
    report = {
        "database": where,
        "events": stats.events,
        "last_position": stats.last_position,
        "head": stats.head.hex(),
        "deliveries": stats.deliveries,
        "events_by_type": stats.events_by_type,
        "size_bytes": stats.size_bytes,
    }
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"database       {report['database']} ({stats.size_bytes:,} bytes)")
    click.echo(f"events         {stats.events:,}")
    click.echo(f"last position  {stats.last_position}")
    click.echo(f"chain head     {report['head']}")
    click.echo("deliveries     " + _pairs(stats.deliveries))
    click.echo("by type        " + _pairs(stats.events_by_type))


def _pairs(counts: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"


@cli.command(context_settings=CONTEXT)
@db_option
@click.option(
    "--type", "types", multiple=True, metavar="TYPE", help="Only this event type (repeatable)."
)
@click.option("--id", "ids", multiple=True, metavar="ID", help="Only this event id (repeatable).")
@click.option("--since", metavar="TIME", help="created_at at or after this ISO-8601 time.")
@click.option("--until", metavar="TIME", help="created_at at or before this ISO-8601 time.")
@click.option("--after", default=0, type=int, help="Only positions after this one.")
@click.option("--limit", type=int, help="At most this many events.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one event's metadata per line.")
def events(db, types, ids, since, until, after, limit, as_json) -> None:
    """List events in log order, filtered by type, id and created_at range."""
    from .admin import event_summary, select_events

    with opened_store(load_config(db=db)) as store:
        rows = select_events(
            store, types=types, ids=ids, since=since, until=until, after=after, limit=limit
        )
        if as_json:
            for event in rows:
                click.echo(orjson.dumps(event_summary(event)).decode())
            return
        click.echo(f"{'POSITION':>8}  {'CREATED_AT':<24}  {'TYPE':<32}  ID")
        for event in rows:
            click.echo(f"{event.position:>8}  {event.created_at:<24}  {event.type:<32}  {event.id}")


@cli.command(context_settings=CONTEXT)
@db_option
@click.argument("event_id")
def show(db: str | None, event_id: str) -> None:
    """Print the raw body of event EVENT_ID exactly as it was received."""
    with opened_store(load_config(db=db)) as store:
        event = store.get(event_id)
    if event is None:
        raise click.ClickException(f"no event with id {event_id!r}")
    sys.stdout.buffer.write(event.body)
    sys.stdout.buffer.flush()


@cli.command(context_settings=CONTEXT)
@db_option
@click.option("--expect-head", metavar="HEX", help="Also require the chain to end at this value.")
def verify(db: str | None, expect_head: str | None) -> None:
    """Recompute the hash chain from the first event; exit 1 naming the first bad position."""
    from .admin import verify_log

    with opened_store(load_config(db=db)) as store:
        report = verify_log(store)
    if not report.ok:
        click.echo(f"FAILED at position {report.first_bad_position}: {report.problem}", err=True)
        sys.exit(1)
    if expect_head and report.head.hex() != expect_head.lower():
        click.echo(
            f"FAILED: chain ends at {report.head.hex()}, expected {expect_head} "
            "(events were removed from the end, or the head belongs to another log)",
            err=True,
        )
        sys.exit(1)
    click.echo(f"ok, {report.events} events (head {report.head.hex()})")


@cli.command(context_settings=CONTEXT)
@db_option
@click.option("-o", "--output", type=click.File("wb"), default="-", help="File to write [stdout].")
def export(db: str | None, output) -> None:
    """Write every event as JSON Lines, raw bodies included."""
    from .admin import export_events

    with opened_store(load_config(db=db)) as store:
        count = export_events(store, output)
    click.echo(f"exported {count} events", err=True)


@cli.command("import", context_settings=CONTEXT)
@db_option
@click.argument("file", type=click.File("rb"))
def import_(db: str | None, file) -> None:
    """Backfill events from an `ikledger export` file; safe to run again."""
    from .admin import import_events

    with opened_store(load_config(db=db)) as store:
        report = import_events(store, file)
    click.echo(
        f"imported {report.stored} events; {report.duplicate} already present, "
        f"{report.conflict} conflicting"
    )


@cli.command(context_settings=CONTEXT)
@click.argument("source", metavar="TYPE|FILE")
@click.option(
    "--url", default="http://127.0.0.1:8080/webhook", show_default=True, help="Receiver to post to."
)
@click.option(
    "--scheme",
    type=click.Choice(["standard", "legacy"]),
    default="standard",
    show_default=True,
    help="Signature scheme.",
)
@click.option("--asset", metavar="URL", help="Source video URL to put in a video event.")
@click.option(
    "--request-id", metavar="ID", help="x_request_id, to pair an accepted with its ready or error."
)
def trigger(source: str, url: str, scheme: str, asset: str | None, request_id: str | None) -> None:
    """Sign a realistic event with the configured secret and POST it, as ImageKit would.

    TYPE is an event type with a shipped template (a fresh id and created_at each
    time); FILE is a JSON body sent exactly as it is. Known types:
    video.transformation.{accepted,ready,error}, upload.pre-transform.{success,error},
    upload.post-transform.{success,error}, file.{created,updated,deleted},
    file-version.{created,deleted}, folder.{created,updated,deleted}.
    """
    import time

    from .trigger import TriggerError, deliver, event_from

    config = load_config()
    if not config.secrets:
        raise click.UsageError(SECRET_HELP)
    try:
        body = event_from(source, now=time.time(), asset=asset, request_id=request_id)
        answer = deliver(url, body, config.secrets[0], scheme=scheme)
    except TriggerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{answer.status} {answer.body}")
    if answer.status >= 300:
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@db_option
@click.argument("path", type=click.Path(dir_okay=False))
def backup(db: str | None, path: str) -> None:
    """Write a consistent snapshot of the log to PATH as a SQLite log file, while the server writes."""
    with opened_store(load_config(db=db)) as store:
        count = store.backup(path)
    click.echo(f"backed up {count} events to {path}")


for _command in cli_read.COMMANDS:
    cli.add_command(_command)
cli.add_command(cli_db.db_role)


def main() -> None:
    cli(prog_name="ikledger")
