"""The SQL that creates a receiver role: it may read the log and append through the function."""

from __future__ import annotations

from importlib import resources

from psycopg import sql


def receiver_role_sql(role: str, password: str, *, database: str, schema: str = "public") -> str:
    """`role.sql` with its names quoted in: run it as the schema's owner (e.g. with psql).

    The statements are whole and readable; nothing is executed here.
    """
    template = resources.files(__package__).joinpath("role.sql").read_text()
    return (
        sql.SQL(template)
        .format(
            role=sql.Identifier(role),
            password=sql.Literal(password),
            database=sql.Identifier(database),
            schema=sql.Identifier(schema),
        )
        .as_string(None)
    )
