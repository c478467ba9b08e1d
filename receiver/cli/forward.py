"""Forwarding commands of the `ikledger` CLI: `destinations …` and `replay`.

Thin adapters over `forwarding`'s admin functions: a user's mistake
(`ForwardingError`) ends in one `Error:` line and exit 1. A destination's secret is
taken, never printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
import orjson

import forwarding
from forwarding import ForwardingError
from projections import InvalidQuery
from receiver import timespec
from store import EventStore

from .common import CONTEXT, db_option, load_config, opened_store
from .tables import clock, table


@contextmanager
def _store(db: str | None) -> Iterator[EventStore]:
    with opened_store(load_config(db=db)) as store:
        try:
            yield store
        except ForwardingError as exc:
            raise click.ClickException(str(exc)) from None


def _print_json(value) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@click.group(context_settings=CONTEXT)
def destinations() -> None:
    """Configure the endpoints every stored event is forwarded to (add, list, show, …).

    `ikledger serve` delivers to every destination that is not paused: each event's
    exact bytes, signed (Standard Webhooks), retried on a schedule, in order per asset.
    See docs/forwarding.md.
    """


@destinations.command("add", context_settings=CONTEXT)
@db_option
@click.argument("name")
@click.argument("url")
@click.option(
    "--secret",
    metavar="whsec_…",
    help="Sign with this Standard Webhooks secret [default: the first IMAGEKIT_WEBHOOK_SECRET, "
    "as ImageKit signs].",
)
@click.option(
    "--types",
    metavar="PATTERN[,PATTERN…]",
    default="",
    help="Event types to forward, shell patterns (video.transformation.*) [default: all].",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per attempt.")
@click.option(
    "--max-in-flight",
    type=int,
    default=8,
    show_default=True,
    help="Attempts at once (different assets).",
)
@click.option("--rate", type=float, default=None, help="Attempts per second [default: no limit].")
@click.option(
    "--retry-schedule",
    default=forwarding.DEFAULT_SCHEDULE,
    show_default=True,
    help="Delays before each retry (ms, s, m, h); then the event is failed.",
)
@click.option(
    "--from",
    "start",
    type=click.Choice(["now", "start"]),
    default="now",
    show_default=True,
    help="Forward events stored from now on, or the whole log.",
)
@click.option("--unordered", is_flag=True, help="Do not keep the order per asset.")
def add(
    db: str | None,
    name: str,
    url: str,
    secret: str | None,
    types: str,
    timeout: float,
    max_in_flight: int,
    rate: float | None,
    retry_schedule: str,
    start: str,
    unordered: bool,
) -> None:
    """Forward every stored event (of --types) to URL, under NAME."""
    with _store(db) as store:
        destination = forwarding.add_destination(
            store,
            name,
            url,
            secret=secret,
            types=types.split(","),
            timeout=timeout,
            max_in_flight=max_in_flight,
            rate=rate,
            retry_schedule=retry_schedule,
            start=start,
            unordered=unordered,
        )
    click.echo(
        f"added {destination.name}: {destination.display_url} (events from {start}; "
        "`ikledger serve` delivers)"
    )


@destinations.command("list", context_settings=CONTEXT)
@db_option
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def list_(db: str | None, as_json: bool) -> None:
    """Every destination: state, URL, delivered, pending, failed, lag."""
    with _store(db) as store:
        rows = forwarding.list_destinations(store)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo("no destinations (ikledger destinations add NAME URL)")
        return
    click.echo(
        table(
            ["NAME", "STATE", "URL", "DELIVERED", "PENDING", "FAILED", "LAG"],
            (
                [
                    r["name"],
                    r["state"],
                    r["url"],
                    r["delivered"],
                    r["pending"],
                    r["failed"],
                    f"{r['lag_events']} ({r['lag_seconds']:.0f} s)",
                ]
                for r in rows
            ),
        )
    )


@destinations.command("show", context_settings=CONTEXT)
@db_option
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def show(db: str | None, name: str, as_json: bool) -> None:
    """One destination's settings, counts, lag and last success and failure."""
    with _store(db) as store:
        status = forwarding.destination_status(store, name)
    if as_json:
        _print_json(status)
        return
    reason = f" ({status['pause_reason']})" if status["paused"] else ""
    lines = [
        ("name", status["name"]),
        ("url", status["url"]),
        ("state", status["state"] + reason),
        ("signed with", status["signed_with"]),
        ("types", ", ".join(status["types"]) or "all"),
        ("delivered", status["delivered"]),
        ("pending", status["pending"]),
        ("failed", status["failed"]),
        ("lag", f"{status['lag_events']} events, {status['lag_seconds']:.1f} s"),
        ("last success", clock(status["last_success"])),
        ("last failure", clock(status["last_failure"])),
        ("failure reason", status["last_failure_reason"] or "-"),
        ("retry schedule", status["retry_schedule"]),
        ("timeout", f"{status['timeout']:g} s"),
        ("max in flight", status["max_in_flight"]),
        ("rate", "no limit" if status["rate"] is None else f"{status['rate']:g}/s"),
        ("order", "none" if status["unordered"] else "per asset"),
        ("forwarder", status["forwarder"] or "-"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)}  {value}")


@destinations.command("pause", context_settings=CONTEXT)
@db_option
@click.argument("name")
def pause(db: str | None, name: str) -> None:
    """Stop delivering to NAME; events keep being queued for it."""
    with _store(db) as store:
        forwarding.pause(store, name)
    click.echo(f"paused {name}")


@destinations.command("resume", context_settings=CONTEXT)
@db_option
@click.argument("name")
def resume(db: str | None, name: str) -> None:
    """Deliver to NAME again, from where it stopped."""
    with _store(db) as store:
        forwarding.resume(store, name)
    click.echo(f"resumed {name}")


@destinations.command("remove", context_settings=CONTEXT)
@db_option
@click.argument("name")
def remove(db: str | None, name: str) -> None:
    """Remove NAME with its queue, attempts and replays (the events stay in the log)."""
    with _store(db) as store:
        forwarding.remove(store, name)
    click.echo(f"removed {name}")


@click.command(context_settings=CONTEXT)
@db_option
@click.argument("name")
@click.option("--since", metavar="T", help="Received at or after T (ISO-8601, or 90m, 24h, 7d).")
@click.option("--until", metavar="T", help="Received before T.")
@click.option("--type", "type_", metavar="PATTERN", help="Event type, a shell pattern.")
@click.option("--asset", metavar="URL", help="Events of this video asset.")
@click.option("--event", "event_id", metavar="ID", help="This one event.")
@click.option("--failed", is_flag=True, help="Only the events given up on.")
@click.option("--rate", type=float, default=None, help="Attempts per second for this replay.")
@click.option("--dry-run", is_flag=True, help="Only count the events it would queue.")
def replay(
    db: str | None,
    name: str,
    since: str | None,
    until: str | None,
    type_: str | None,
    asset: str | None,
    event_id: str | None,
    failed: bool,
    rate: float | None,
    dry_run: bool,
) -> None:
    """Send the selected events to destination NAME again, as a durable, throttled job.

    `ikledger serve` delivers the job (it survives restarts), each event re-signed with
    a fresh timestamp and the header ikledger-replay.
    """
    try:  # the forms every command and page reads (receiver.timespec)
        since, until = timespec.optional_instant(since), timespec.optional_instant(until)
    except InvalidQuery as exc:
        raise click.UsageError(str(exc)) from None
    with _store(db) as store:
        count = forwarding.replay(
            store,
            name,
            since=since,
            until=until,
            type=type_,
            asset=asset,
            event_id=event_id,
            failed=failed,
            rate=rate,
            dry_run=dry_run,
        )
    if dry_run:
        click.echo(f"would queue {count} events for {name}")
    else:
        click.echo(f"queued {count} events for {name}")
