"""The PostgreSQL log's identity: kept across receivers, given to older logs by migration."""

from __future__ import annotations

import secrets

from store.postgres import PostgresStore
from store.postgres.schema import migrations


def test_every_receiver_of_one_database_sees_the_same_log_id(open_pg):
    first, second = open_pg(), open_pg()
    assert first.log_id() == second.log_id()
    assert len(first.log_id()) == 32


def test_log_created_before_identities_gets_one_and_its_readers_may_read_it(pg_admin, postgres_url):
    # The log as the releases before 003 made it, with a receiver-like role that was
    # granted SELECT on the log's tables back then.
    pg_admin.execute(
        "CREATE TABLE ikledger_schema (version integer PRIMARY KEY, name text NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for version, name, sql in migrations():
        if version < 3:
            pg_admin.execute(sql)
            pg_admin.execute(
                "INSERT INTO ikledger_schema (version, name) VALUES (%s, %s)", (version, name)
            )
    role, password = f"old_{secrets.token_hex(4)}", secrets.token_hex(8)
    pg_admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    pg_admin.execute(f'GRANT SELECT ON events, log_head, ikledger_schema TO "{role}"')
    try:
        with PostgresStore(postgres_url, timeout=5) as owner:
            given = owner.log_id()
        rest = postgres_url.split("@", 1)[1]
        as_role = f"postgresql://{role}:{password}@{rest}"
        with PostgresStore(as_role, timeout=5) as reader:
            assert reader.log_id() == given
    finally:
        pg_admin.execute(f'DROP OWNED BY "{role}"')
        pg_admin.execute(f'DROP ROLE "{role}"')
