"""`ikledger db-role`: a receiver role that appends only through the function, and reads."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from store.postgres import PostgresStore, receiver_role_sql
from tests.support import event_body, invoke_cli, new_event, serve, signed

REFUSED = [
    "INSERT INTO events VALUES (99, 'x', 't', 'c', 'r', 's', sha256('x'), 'x')",
    "UPDATE events SET type = 'changed'",
    "DELETE FROM events",
    "INSERT INTO deliveries (received_at, outcome) VALUES ('now', 'stored')",
    "UPDATE log_head SET position = position + 1",
    "DELETE FROM type_counts",
]


def _as(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.netloc.split('@', 1)[1]}"))


@pytest.fixture
def receiver_role(postgres_cluster, postgres_db, postgres_url):
    """A role made by `ikledger db-role --apply`: (name, password, its URL). Dropped after."""
    role, password = f"recv_{secrets.token_hex(4)}", secrets.token_hex(12)
    done = invoke_cli(
        "db-role",
        role,
        "--password-env",
        "ROLE_PW",
        "--apply",
        "--db",
        postgres_url,
        env={"ROLE_PW": password},
    )
    assert done.returncode == 0, done.stderr.decode()
    assert password not in (done.stdout + done.stderr).decode()
    yield role, password, _as(postgres_url, role, password)
    with postgres_cluster.admin(postgres_db) as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


def test_receiver_role_appends_through_serve_and_reads(receiver_role, tmp_path):
    _, _, url = receiver_role
    env = {"IKLEDGER_PROJECTIONS_DB": str(tmp_path / "views.db")}
    event_id = "evt-role-1"
    body = event_body(event_id)
    with serve(tmp_path / "a.db", env=env, args=("--db", url)) as served:
        answer = httpx.post(f"{served.base}/webhook", content=body, headers=signed(body))
        again = httpx.post(f"{served.base}/webhook", content=body, headers=signed(body))
    assert answer.status_code == 200, answer.text
    assert again.status_code == 200, again.text
    with PostgresStore(url, timeout=5) as store:
        stored = store.get(event_id)
        assert stored is not None and stored.body == body and stored.position == 1
        assert sorted(d.outcome for d in store.deliveries(event_id=event_id)) == [
            "duplicate",
            "stored",
        ]
        assert store.verify().ok
    shown = invoke_cli("events", "--db", url, env=env)
    assert shown.returncode == 0 and event_id in shown.stdout.decode()


@pytest.mark.parametrize("statement", REFUSED)
def test_receiver_role_cannot_change_tables_directly(receiver_role, statement):
    _, _, url = receiver_role
    with PostgresStore(url, timeout=5) as store:  # one event, so UPDATE/DELETE have a row
        store.append(new_event("evt-role-2"))
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)


def test_db_role_prints_the_sql_of_the_store(postgres_url):
    done = invoke_cli(
        "db-role", "recv", "--password-env", "ROLE_PW", "--db", postgres_url, env={"ROLE_PW": "pw"}
    )
    assert done.returncode == 0, done.stderr.decode()
    database = urlsplit(postgres_url).path.lstrip("/")
    assert (
        done.stdout.decode().strip() == receiver_role_sql("recv", "pw", database=database).strip()
    )


def test_db_role_refuses_a_sqlite_log_and_an_empty_password_variable(tmp_path):
    sqlite = invoke_cli(
        "db-role", "recv", "--password-env", "P", "--db", str(tmp_path / "x.db"), env={"P": "pw"}
    )
    assert sqlite.returncode == 2 and b"needs a PostgreSQL log" in sqlite.stderr
    empty = invoke_cli(
        "db-role", "recv", "--password-env", "P", "--db", "postgresql://o@h/db", env={"P": ""}
    )
    assert empty.returncode == 2 and b"empty or unset" in empty.stderr


@pytest.fixture
def owner_url(postgres_cluster, postgres_db):
    """docs/deployment.md step 1: an owner role with CREATEROLE (no superuser) that owns
    the database; its URL. Dropped after."""
    owner, password = f"owner_{secrets.token_hex(4)}", secrets.token_hex(12)
    with postgres_cluster.admin() as conn:
        conn.execute(f"CREATE ROLE \"{owner}\" LOGIN CREATEROLE PASSWORD '{password}'")
        conn.execute(f'ALTER DATABASE "{postgres_db}" OWNER TO "{owner}"')
    with postgres_cluster.admin(postgres_db) as conn:
        conn.execute(f'ALTER SCHEMA public OWNER TO "{owner}"')
    yield _as(postgres_cluster.url(postgres_db), owner, password)
    with postgres_cluster.admin(postgres_db) as conn:
        for role in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'recv_twice_%'"
        ).fetchall():
            conn.execute(f'DROP OWNED BY "{role[0]}"')
            conn.execute(f'DROP ROLE "{role[0]}"')
        conn.execute(f'REASSIGN OWNED BY "{owner}" TO CURRENT_USER')
        conn.execute(f'DROP OWNED BY "{owner}"')
    with postgres_cluster.admin() as conn:
        conn.execute(f'ALTER DATABASE "{postgres_db}" OWNER TO CURRENT_USER')
        conn.execute(f'DROP ROLE "{owner}"')


def test_db_role_apply_by_the_owner_twice_succeeds_and_keeps_the_last_password(owner_url):
    role = f"recv_twice_{secrets.token_hex(4)}"
    for password in ("first-password", "second-password"):
        done = invoke_cli(
            "db-role",
            role,
            "--password-env",
            "ROLE_PW",
            "--apply",
            "--db",
            owner_url,
            env={"ROLE_PW": password},
        )
        assert done.returncode == 0, done.stderr.decode()
    with PostgresStore(_as(owner_url, role, "second-password"), timeout=5) as store:
        assert store.verify().ok
