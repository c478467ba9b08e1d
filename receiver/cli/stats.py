"""`ikledger stats`: the overview's numbers in the terminal, as GET /stats answers them."""

from __future__ import annotations

import click

import projections
from projections.stats_queries import BUCKETS

from .common import CONTEXT, db_option
from .read import _print_json, _views


@click.command(context_settings=CONTEXT)
@db_option
@click.option("--since", metavar="TIME", help="From this ISO-8601 time (floored to 5 minutes).")
@click.option("--until", metavar="TIME", help="Before this ISO-8601 time (raised to 5 minutes).")
@click.option(
    "--bucket",
    type=click.Choice(list(BUCKETS)),
    default="1h",
    show_default=True,
    help="Bucket size of the per-bucket counts.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON GET /stats returns.")
def stats(db, since, until, bucket, as_json) -> None:
    """Events by type, transformations by status, errors by reason, accepted-to-ready times."""
    with _views(db) as (config, views, _runner):
        try:
            result = projections.stats(views, since, until, bucket, stuck_after=config.stuck_after)
        except projections.InvalidQuery as exc:
            raise click.UsageError(str(exc)) from None
    if as_json:
        _print_json(result)
    else:
        from . import tables

        click.echo(tables.stats(result))
