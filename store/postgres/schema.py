"""The log's schema: ordered `.sql` migrations applied once, under an advisory lock."""

from __future__ import annotations

from importlib import resources

import psycopg

# One key for every ikledger database: migrations of one database never run twice at
# once, whichever receiver starts first. (Any 64-bit constant; this is "ikledger".)
MIGRATION_LOCK = 0x696B6C6564676572

_VERSION_TABLE = """
CREATE TABLE ikledger_schema (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration shipped, in order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text()))
    return sorted(found)


def apply(conn: psycopg.Connection) -> list[str]:
    """Apply the pending migrations in one transaction; returns the names applied.

    Every starting receiver calls this: the transaction-level advisory lock makes the
    others wait until the first has committed, then they find nothing to do. A role
    that may not create tables (a receiver's) passes when the schema is up to date.
    """
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        exists = conn.execute("SELECT to_regclass('ikledger_schema') IS NOT NULL").fetchone()[0]
        if not exists:
            conn.execute(_VERSION_TABLE)
        done = {row[0] for row in conn.execute("SELECT version FROM ikledger_schema")}
        for version, name, sql in migrations():
            if version in done:
                continue
            conn.execute(sql)
            conn.execute(
                "INSERT INTO ikledger_schema (version, name) VALUES (%s, %s)", (version, name)
            )
            applied.append(name)
    return applied
