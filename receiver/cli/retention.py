"""Retention and erasure commands of the `ikledger` CLI: prune, erase. Loaded only when
one of them runs (see `receiver.cli.LAZY_COMMANDS`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from .common import CONTEXT, db_option, load_config, opened_store, read_model_failures


def _rebuild_read_models(config, store) -> None:
    """Rebuild every read model from what the log still holds, and swap them in."""
    from projections import ProjectionError, ProjectionRunner
    from receiver.runtime.wiring import open_read_models

    with read_model_failures(config):
        views = open_read_models(config, store)
        try:
            ProjectionRunner(views).rebuild(None)
        except ProjectionError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            views.close()


@click.command(context_settings=CONTEXT)
@db_option
@click.option(
    "--before", required=True, metavar="TIME", help="ISO-8601 time, or an age such as 90d."
)
def prune(db: str | None, before: str) -> None:
    """Remove the bodies of events received before TIME; proofs and verify still hold."""
    from receiver.retention import RetentionError, cutoff
    from receiver.retention import prune as prune_bodies

    try:
        moment = cutoff(before, datetime.now(UTC))
    except RetentionError as exc:
        raise click.UsageError(str(exc)) from None
    config = load_config(db=db)
    with opened_store(config) as store:
        removed = prune_bodies(store, moment)
        if removed:
            _rebuild_read_models(config, store)
    click.echo(f"pruned the bodies of {removed:,} events received before {moment}")


@click.command(context_settings=CONTEXT)
@db_option
@click.argument("event_id")
@click.option("--reason", required=True, help="Why (kept with the erasure, append-only).")
def erase(db: str | None, event_id: str, reason: str) -> None:
    """Remove the body of EVENT_ID at any age, recording why; proofs and verify still hold."""
    from receiver.retention import RetentionError
    from receiver.retention import erase as erase_body

    config = load_config(db=db)
    with opened_store(config) as store:
        try:
            removed = erase_body(store, event_id, reason)
        except (LookupError, RetentionError) as exc:
            raise click.ClickException(str(exc).strip("'\"")) from None
        if removed:
            _rebuild_read_models(config, store)
    click.echo(f"erased the body of {event_id}" if removed else f"{event_id}: already erased")
