"""The SQL that creates a receiver role: it may read the log and append through the function."""

from __future__ import annotations

from importlib import resources

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ..contract import StoreError
from .connect import Target
from .schema import apply as apply_migrations


def receiver_role_sql(role: str, password: str, *, database: str, schema: str = "public") -> str:
    """`role.sql` with its names quoted in: run it as the schema's owner (e.g. with psql).

    The statements are whole and readable, and running them again is harmless (an
    existing role gets the password); nothing is executed here.
    """
    if "$ikledger_role$" in password:  # the dollar quote of the statement that names it
        raise StoreError("the role's password may not contain $ikledger_role$")
    template = resources.files(__package__).joinpath("role.sql").read_text()
    return (
        sql.SQL(template)
        .format(
            role=sql.Identifier(role),
            role_name=sql.Literal(role),
            password=sql.Literal(password),
            database=sql.Identifier(database),
            schema=sql.Identifier(schema),
        )
        .as_string(None)
    )


def database_of(location: str) -> str:
    """The database name a PostgreSQL location names (a StoreError when it names none)."""
    try:
        name = conninfo_to_dict(location).get("dbname")
    except Exception:  # noqa: BLE001 -- the message below says what is wrong
        name = None
    if not name:
        raise StoreError(f"{Target(location, 5).display_name}: names no database")
    return name


def create_receiver_role(
    location: str, role: str, password: str, *, schema: str = "public", timeout: float = 10.0
) -> None:
    """Create the receiver role on `location` (connected as the schema's owner), in one
    transaction, after applying the log's migrations (the grants name its tables)."""
    target = Target(location, timeout)
    statements = receiver_role_sql(role, password, database=database_of(location), schema=schema)
    conn = target.connect()
    try:
        with target.translated("creating the receiver role"):
            apply_migrations(conn)
            with conn.transaction():
                conn.execute(statements)
    finally:
        conn.close()
