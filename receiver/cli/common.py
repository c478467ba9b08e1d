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
from store import EventStore, StoreCorrupt, StoreError
from store.lazylog import lazy_logger

log = lazy_logger("ikledger.cli")

# After a damaged log's one-line message: what still works, and how to see how far.
VERIFY_HINT = (
    "`ikledger verify` names the first bad position; restore the log from a backup, "
    "then `ikledger rebuild` rebuilds its read models"
)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

db_option = click.option(
    "--db",
    metavar="LOCATION",
    help="The log: a path, sqlite:///path, or postgresql://… [env IKLEDGER_DB; default ikledger.db].",
)


def time_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: a time option read as the API reads it (`receiver.timespec`)."""
    if value is None or not value.strip():  # not given: nothing to import for it
        return None
    from receiver import timespec

    try:
        return timespec.optional_instant(value)
    except projections.InvalidQuery as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def as_of_value(ctx: click.Context, param: click.Parameter, value: str | None):
    """A click callback: `--as-of` as a log position or a time (`receiver.timespec`)."""
    if value is None or not value.strip():  # not given: nothing to import for it
        return None
    from receiver import timespec

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
        raise store_failure(exc) from None
    try:
        yield store
    except StoreError as exc:
        raise store_failure(exc) from None
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


def store_failure(exc: StoreError) -> click.ClickException:
    """The one-line message of a store failure; a damaged log's says how to go on.

    The traceback goes to the log at debug level, never to the terminal.
    """
    log.debug("the log failed", exc_info=exc)
    if isinstance(exc, StoreCorrupt):
        return click.ClickException(f"{exc}; {VERIFY_HINT}")
    return click.ClickException(str(exc))


@contextmanager
def read_model_failures(config: Config, store: EventStore | None = None) -> Iterator[None]:
    """Turn read models that cannot be used into a one-line message naming their file.

    Damaged (ReadModelCorrupt), another log's (ReadModelOfAnotherLog) or unreadable
    right now (ReadModelUnavailable); a damaged log met on the way (StoreCorrupt, which
    the catch-up raises) too. The traceback goes to the log at debug level.
    """
    try:
        yield
    except StoreError as exc:
        raise store_failure(exc) from None
    except (projections.ReadModelCorrupt, projections.ReadModelOfAnotherLog) as exc:
        log.debug("the read models failed", exc_info=exc)
        raise click.ClickException(str(exc)) from None
    except projections.UNREADABLE as exc:
        log.debug("the read models failed", exc_info=exc)
        raise click.ClickException(
            f"cannot use the read models in {_path(config, store)}: {exc} "
            "(IKLEDGER_PROJECTIONS_DB; delete the file and `ikledger rebuild` rebuilds them "
            "from the log)"
        ) from None


def _path(config: Config, store: EventStore | None) -> str:
    try:
        return config.projections_path(None if store is None else store.log_id())
    except (ValueError, StoreError):  # a URL's log that cannot say who it is
        return "IKLEDGER_PROJECTIONS_DB"
