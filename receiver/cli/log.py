"""The log's commands of the `ikledger` CLI: status, events, show, verify, export, import,
trigger, backup. Loaded only when one of them runs (see `receiver.cli.LAZY_COMMANDS`).
"""

from __future__ import annotations

import sys

import click
import orjson

from receiver.config import SECRET_HELP

from .common import CONTEXT, db_option, load_config, opened_store, time_value


@click.command(context_settings=CONTEXT)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(db: str | None, as_json: bool) -> None:
    """Events, last position, head of the chain, deliveries by outcome, database size."""
    from receiver.checkpoints import KEY_HELP, checkpoint_size

    config = load_config(db=db)
    with opened_store(config) as store:
        stats = store.stats()
        where = store.display_name
        latest = store.latest_checkpoint()
    kept = {
        "size": None if latest is None else checkpoint_size(latest),
        "signed": latest is not None and b"\n\n" in latest,
        "signing_key": bool(config.signing_key),
    }
    report = {
        "database": where,
        "events": stats.events,
        "last_position": stats.last_position,
        "head": stats.head.hex(),
        "deliveries": stats.deliveries,
        "events_by_type": stats.events_by_type,
        "size_bytes": stats.size_bytes,
        "checkpoint": kept,
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
    if kept["size"] is None:
        click.echo("checkpoint     none kept yet")
    else:
        signed = "signed" if kept["signed"] else "unsigned"
        click.echo(f"checkpoint     {kept['size']:,} events, {signed}")
    if not config.signing_key:
        click.echo(f"note: {KEY_HELP}")


def _pairs(counts: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"


@click.command(context_settings=CONTEXT)
@db_option
@click.option(
    "--type", "types", multiple=True, metavar="TYPE", help="Only this event type (repeatable)."
)
@click.option("--id", "ids", multiple=True, metavar="ID", help="Only this event id (repeatable).")
@click.option(
    "--since",
    metavar="TIME",
    callback=time_value,
    help="created_at at or after TIME (ISO-8601, a date, or 90m, 24h, 7d ago).",
)
@click.option(
    "--until",
    metavar="TIME",
    callback=time_value,
    help="created_at at or before TIME (as --since).",
)
@click.option("--after", default=0, type=int, help="Only positions after this one.")
@click.option("--limit", type=int, help="At most this many events.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one event's metadata per line.")
def events(db, types, ids, since, until, after, limit, as_json) -> None:
    """List events in log order, filtered by type, id and created_at range."""
    from receiver.events import event_summary, select_events

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


@click.command(context_settings=CONTEXT)
@db_option
@click.argument("event_id")
def show(db: str | None, event_id: str) -> None:
    """Print the raw body of event EVENT_ID exactly as it was received."""
    from receiver.events import removal

    with opened_store(load_config(db=db)) as store:
        event = store.get(event_id)
        pruned = None if event is None else removal(store, event)
    if event is None:
        raise click.ClickException(f"no event with id {event_id!r}")
    if pruned:
        raise click.ClickException(
            f"the body of {event_id!r} was pruned on {pruned['pruned_on']} "
            f"({pruned['kind']}: {pruned['reason']})"
        )
    sys.stdout.buffer.write(event.body)
    sys.stdout.buffer.flush()


@click.command(context_settings=CONTEXT)
@db_option
@click.option("--expect-head", metavar="HEX", help="Also require the chain to end at this value.")
@click.option(
    "--since-checkpoint",
    "old_checkpoint",
    type=click.File("rb"),
    metavar="OLD.note",
    help="Also prove the log extends this signed checkpoint (needs --key).",
)
@click.option(
    "--key", metavar="VERIFIER_KEY", help="The verifier key (or its file) of --since-checkpoint."
)
def verify(db: str | None, expect_head: str | None, old_checkpoint, key: str | None) -> None:
    """Recompute the hash chain from the first event; exit 1 naming the first bad position.

    With --since-checkpoint OLD.note --key VERIFIER_KEY, also check with an RFC 9162
    consistency proof that today's log extends that signed checkpoint: nothing below
    it was changed, removed or inserted. A failure names the check that failed.
    """
    from receiver.events import verify_log

    if (old_checkpoint is None) != (key is None):
        raise click.UsageError("--since-checkpoint and --key go together")
    with opened_store(load_config(db=db)) as store:
        report = verify_log(store)
        if report.ok and old_checkpoint is not None:
            from receiver.checkpoints import extends_checkpoint
            from store.tlog.proofs import ProofCheckFailed

            from .proofs import verifier_key

            try:
                assert key is not None  # goes with --since-checkpoint, checked above
                old_size = extends_checkpoint(store, old_checkpoint.read(), verifier_key(key))
            except ProofCheckFailed as exc:
                click.echo(f"FAILED since the checkpoint: {exc}", err=True)
                sys.exit(1)
            click.echo(f"ok, the log extends the checkpoint of {old_size} events")
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


@click.command(context_settings=CONTEXT)
@db_option
@click.option("-o", "--output", type=click.File("wb"), default="-", help="File to write [stdout].")
def export(db: str | None, output) -> None:
    """Write every event as JSON Lines, raw bodies included."""
    from receiver.events import export_events

    with opened_store(load_config(db=db)) as store:
        count = export_events(store, output)
    click.echo(f"exported {count} events", err=True)


@click.command("import", context_settings=CONTEXT)
@db_option
@click.argument("file", type=click.File("rb"))
def import_(db: str | None, file) -> None:
    """Backfill events from an `ikledger export` file; safe to run again."""
    from receiver.events import import_events

    with opened_store(load_config(db=db)) as store:
        report = import_events(store, file)
    click.echo(
        f"imported {report.stored} events; {report.duplicate} already present, "
        f"{report.conflict} conflicting"
    )


@click.command(context_settings=CONTEXT)
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


@click.command(context_settings=CONTEXT)
@db_option
@click.argument("path", type=click.Path(dir_okay=False))
def backup(db: str | None, path: str) -> None:
    """Write a consistent snapshot of the log to PATH as a SQLite log file, while the server writes."""
    with opened_store(load_config(db=db)) as store:
        count = store.backup(path)
    click.echo(f"backed up {count} events to {path}")
