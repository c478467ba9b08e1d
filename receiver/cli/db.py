"""`ikledger db-role`: the PostgreSQL role a receiver should connect as."""

from __future__ import annotations

import os

import click

from store import StoreError

from .common import CONTEXT, db_option, load_config


def _is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def _password(env_name: str | None) -> str:
    """The new role's password: from the named variable, else prompted (never echoed)."""
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise click.UsageError(f"--password-env {env_name}: that variable is empty or unset")
        return value
    return click.prompt("Password for the new role", hide_input=True, confirmation_prompt=True)


@click.command("db-role", context_settings=CONTEXT)
@click.argument("name")
@db_option
@click.option(
    "--password-env",
    metavar="VAR",
    help="Read the new role's password from this environment variable [default: prompt].",
)
@click.option("--schema", default="public", show_default=True, help="The log's schema.")
@click.option(
    "--apply",
    is_flag=True,
    help="Run the SQL on --db (connected as the schema's owner) instead of printing it.",
)
def db_role(name: str, db: str | None, password_env: str | None, schema: str, apply: bool):
    """Create (--apply) or print the SQL of a PostgreSQL role NAME for receivers.

    The role may read the log and append only through the ikledger_append function: it
    cannot INSERT, UPDATE or DELETE in any table itself. Point the receivers'
    IKLEDGER_DB at it: postgresql://NAME:PASSWORD@host/db. With --apply the log's
    migrations are applied first; applying again is harmless (an existing role gets the
    new password). The owner needs CREATEROLE. Printed SQL carries the password: pipe
    it into psql rather than a file.
    """
    config = load_config(db=db)
    if not _is_postgres(config.db):
        raise click.UsageError(
            "db-role needs a PostgreSQL log: --db or IKLEDGER_DB = postgresql://owner@host/db"
        )
    from store.postgres.role import create_receiver_role, database_of, receiver_role_sql

    password = _password(password_env)
    try:
        if apply:
            create_receiver_role(
                config.db, name, password, schema=schema, timeout=config.db_timeout
            )
            click.echo(
                f"role {name} ready (created, or its password set if it existed): it may read "
                "the log and append through ikledger_append"
            )
        else:
            click.echo(
                receiver_role_sql(name, password, database=database_of(config.db), schema=schema)
            )
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
