"""Read-model commands of the `ikledger` CLI: rebuild, timeline, assets, failures, projections.

Query commands bring the read models up to the log first (a no-op when a running
server keeps them current), so they answer for everything in the log.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import click
import orjson

import projections
from projections import ProjectionError, ProjectionRunner, chosen
from receiver.runtime.wiring import open_read_models

from .common import (
    CONTEXT,
    as_of_value,
    db_option,
    load_config,
    opened_store,
    read_model_failures,
    time_value,
)


@contextmanager
def _views(db: str | None, *, catch_up: bool = True, adopt: bool = False, reads: str | None = None):
    """The log's read models, caught up first; `reads`: the one projection the command
    answers from, the only one caught up (the body search need not fold a backlog for a
    timeline)."""
    config = load_config(db=db)
    with opened_store(config) as store, read_model_failures(config, store):
        views = open_read_models(config, store, adopt=adopt)
        try:
            kept = chosen(config.projections)
            if reads is not None:
                kept = tuple(p for p in kept if p.name == reads)
            runner = ProjectionRunner(views, kept)
            if catch_up:
                runner.catch_up()
            yield config, views, runner
        except ProjectionError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            views.close()


def _print_json(value) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _progress_printer():
    """Progress on a terminal only: one line rewritten in place."""
    if not sys.stderr.isatty():
        return None

    def show(p) -> None:
        eta = "" if p.eta is None else f", {p.eta:,.0f} s left"
        click.echo(
            f"\r{p.projection}: {p.phase} {p.done:,}/{p.total:,} events, {p.rate:,.0f}/s{eta}   ",
            err=True,
            nl=p.phase == "done",
        )

    return show


@click.command(context_settings=CONTEXT)
@db_option
@click.argument("name", required=False)
def rebuild(db: str | None, name: str | None) -> None:
    """Replay the whole log into fresh read models and swap them in atomically.

    Readers, a running server included, keep the old model until the new one is
    complete. NAME rebuilds one projection (see `ikledger projections`); default all.
    Read models built from another log (IKLEDGER_PROJECTIONS_DB set to another log's
    file, say) are emptied and rebuilt from this log.
    """
    with _views(db, catch_up=False, adopt=True) as (_, _views_db, runner):
        done = runner.rebuild(name, progress=_progress_printer())
        for projection, count in done.items():
            click.echo(f"rebuilt {projection}: {count:,} events applied")
        for row in runner.status():
            if row["error"]:
                click.echo(
                    f"{row['name']} stopped at position {row['error']['position']}: {row['error']['message']}",
                    err=True,
                )
                sys.exit(1)


@click.command(context_settings=CONTEXT)
@db_option
@click.argument("url")
@click.option(
    "--as-of",
    metavar="POSITION|TIME",
    callback=as_of_value,
    help="The timeline as it stood at a log position or created_at time (as --since).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the HTTP API returns.")
@click.option(
    "--svg",
    "svg_file",
    metavar="FILE",
    type=click.File("w", encoding="utf-8"),
    help="Also write the picture of the web page to FILE (standalone SVG; - for stdout).",
)
@click.option("--wide", is_flag=True, help="Every column, nothing shortened (any width).")
def timeline(db: str | None, url: str, as_of, as_json: bool, svg_file, wide: bool) -> None:
    """What happened to the video at URL: its transformations, their status, times and errors."""
    with _views(db, reads="timeline") as (config, views, _runner):
        result = projections.timeline(views, url, as_of=as_of, stuck_after=config.stuck_after)
    if svg_file is not None:
        from receiver import ui  # Jinja2 and the templates only for a picture

        svg_file.write(ui.timeline_svg(result, stuck_after=config.stuck_after))
        if svg_file.name == "<stdout>":
            return
    if as_json:
        _print_json(result)
    else:
        from . import tables  # the text tables only for text output

        click.echo(tables.timeline(result, wide=wide))


@click.command(context_settings=CONTEXT)
@db_option
@click.option(
    "--status",
    type=click.Choice(["accepted", "ready", "error", "stuck"]),
    help="Only assets with a transformation in this status.",
)
@click.option(
    "--since",
    metavar="TIME",
    callback=time_value,
    help="Only assets active at or after TIME (ISO-8601, a date, or 90m, 24h, 7d ago).",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--wide", is_flag=True, help="Every column, nothing shortened (any width).")
def assets(db, status, since, limit, as_json, wide) -> None:
    """Video assets with counts per transformation status, newest activity first."""
    with _views(db, reads="timeline") as (config, views, _runner):
        result = projections.assets(
            views, status=status, since=since, limit=limit, stuck_after=config.stuck_after
        )
    if as_json:
        _print_json(result)
    else:
        from . import tables

        click.echo(tables.assets(result, wide=wide))


@click.command(context_settings=CONTEXT)
@db_option
@click.option(
    "--reason",
    help="Only this error reason (encoding_failed, download_failed, internal_server_error).",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--wide", is_flag=True, help="Every column, nothing shortened (any width).")
def failures(db, reason, limit, as_json, wide) -> None:
    """What is failing right now: transformations in error, and those stuck after accepted."""
    with _views(db, reads="timeline") as (config, views, _runner):
        errors = projections.transformations(views, status="error", reason=reason, limit=limit)
        stuck = (
            projections.transformations(
                views, status="stuck", limit=limit, stuck_after=config.stuck_after
            )
            if reason is None
            else {"transformations": []}
        )
        # An empty answer for a reason says whether the reason was ever seen (a typo?).
        ever = bool(
            reason is not None
            and not errors["transformations"]
            and projections.transformations(views, reason=reason, limit=1)["transformations"]
        )
    result = {"transformations": errors["transformations"] + stuck["transformations"]}
    if as_json:
        _print_json(result)
    elif not result["transformations"] and reason is not None:
        if ever:
            click.echo(f"no transformation is in error with the reason {reason!r} now")
        else:
            click.echo(f"no transformation has the reason {reason!r}")
    elif not result["transformations"]:
        click.echo("no failing or stuck transformations")
    else:
        from . import tables

        click.echo(tables.transformations(result, wide=wide))


@click.command("projections", context_settings=CONTEXT)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def projections_(db, as_json) -> None:
    """Each projection's version, checkpoint, lag behind the log and last error."""
    with _views(db, catch_up=False) as (_, _views_db, runner):
        status = runner.status()
    if as_json:
        _print_json(status)
    else:
        from . import tables

        click.echo(tables.projections(status))
