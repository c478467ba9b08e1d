"""What every `ikledger` command shares: options, configuration, and openers for the log and
the read models that turn failures into one-line messages (never a traceback).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

import projections
from receiver.config import Config, ConfigError
from receiver.runtime.wiring import open_log_store
from store import EventStore, StoreError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

db_option = click.option(
    "--db",
    metavar="LOCATION",
    help="The log: a path, sqlite:///path, or postgresql://… [env IKLEDGER_DB; default ikledger.db].",
)


def time_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: a time option read as the API reads it (`receiver.timespec`)."""
    from receiver import timespec

    try:
        return timespec.optional_instant(value)
    except projections.InvalidQuery as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def as_of_value(ctx: click.Context, param: click.Parameter, value: str | None):
    """A click callback: `--as-of` as a log position or a time (`receiver.timespec`)."""
    from receiver import timespec

    if value is None or not value.strip():
        return None
    try:
        return timespec.position_or_instant(value)
    except projections.InvalidQuery as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def load_config(**overrides) -> Config:
    """The configuration from the environment and the given options; a usage error if bad."""
    try:
        return Config.from_env(**overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


@contextmanager
def opened_store(config: Config) -> Iterator[EventStore]:
    """The log, closed afterwards; store and admin failures end the command in one line."""
    try:
        store = open_log_store(config)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield store
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        # The commands that can raise these import them; the query commands never load
        # them (start-up time), so they are looked at only once something failed.
        from receiver.events import AdminError
        from receiver.ingest.validation import InvalidEvent

        if isinstance(exc, AdminError):
            raise click.ClickException(str(exc)) from None
        if isinstance(exc, InvalidEvent):
            raise click.UsageError(exc.message) from None
        raise
    finally:
        store.close()


@contextmanager
def read_model_failures(config: Config) -> Iterator[None]:
    """Turn an unreadable read-model file into a one-line message naming it."""
    try:
        yield
    except projections.UNREADABLE as exc:
        raise click.ClickException(
            f"cannot use the read models in {config.projections_path()}: {exc} "
            "(IKLEDGER_PROJECTIONS_DB; delete the file and they are rebuilt from the log)"
        ) from None
