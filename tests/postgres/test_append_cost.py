"""What one group costs the server: work per group, not per event; old logs keep their tree."""

from __future__ import annotations

from store import SQLiteStore
from store.postgres import PostgresStore
from store.postgres.schema import migrations
from tests.postgres.helpers import call_append
from tests.verifiable.logs import fill, random_events


def _function_calls(admin, events) -> dict[str, int]:
    """Server-side function calls made by one `ikledger_append` of `events`, by name.

    The backend's pending counters may still hold earlier transactions' calls: counted
    before and after the call, inside one transaction.
    """
    count = "SELECT funcname, calls FROM pg_stat_xact_user_functions"
    with admin.transaction():
        admin.execute("SET LOCAL track_functions = 'all'")
        before = dict(admin.execute(count).fetchall())
        call_append(admin, events)
        after = dict(admin.execute(count).fetchall())
    return {name: calls - before.get(name, 0) for name, calls in after.items()}


def test_a_groups_function_calls_do_not_grow_with_its_size(pg_store, pg_admin):
    events = random_events(7 + 3 + 120, 21)
    pg_store.append_many(events[:7])  # a tree with a frontier of three levels
    small = _function_calls(pg_admin, events[7:10])
    large = _function_calls(pg_admin, events[10:])
    assert small.get("ikledger_append") == large.get("ikledger_append") == 1
    # Per group: the append, the tree's trigger and a handful of index computations
    # (one per level of the tree's frontier), never one call per event.
    assert sum(large.values()) < 20, large
    assert pg_store.verify().ok


def test_a_log_whose_tree_grew_before_009_keeps_verifying_and_growing(
    pg_admin, postgres_url, tmp_path
):
    events = random_events(700, 22)
    pg_admin.execute(
        "CREATE TABLE ikledger_schema (version integer PRIMARY KEY, name text NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for version, name, sql in migrations():
        if version < 9:
            pg_admin.execute(sql)
            pg_admin.execute(
                "INSERT INTO ikledger_schema (version, name) VALUES (%s, %s)", (version, name)
            )
    for start in range(0, 333, 37):  # the tree of 005: grown one event at a time
        call_append(pg_admin, events[start : min(start + 37, 333)])
    with PostgresStore(postgres_url, timeout=5) as pg, SQLiteStore(tmp_path / "log.db") as lite:
        fill(pg, events[333:], 22)
        fill(lite, events, 23)
        assert pg.verify().ok
        sizes = (1, 2, 332, 333, 334, 511, 512, 700)
        assert [pg.tree_root(n) for n in sizes] == [lite.tree_root(n) for n in sizes]
        assert pg.tree_head() == lite.tree_head()


def test_a_log_that_grew_after_its_first_groups_is_still_read_through_its_indexes(
    pg_store, pg_admin
):
    """Plans made while the log was empty must not scan it once it is large."""
    plans: list[str] = []
    pg_admin.execute("LOAD 'auto_explain'")
    pg_admin.execute("SET auto_explain.log_nested_statements = on")
    pg_admin.execute("SET auto_explain.log_level = notice")
    pg_admin.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
    events = random_events(3000, 24)
    for n in range(8):  # more calls than plpgsql makes custom plans for
        call_append(pg_admin, events[n : n + 1])
    for start in range(8, len(events) - 10, 400):
        call_append(pg_admin, events[start : min(start + 400, len(events) - 10)])
    pg_admin.execute("SET auto_explain.log_min_duration = 0")
    call_append(pg_admin, events[-10:])
    pg_admin.execute("SET auto_explain.log_min_duration = -1")
    text = "\n".join(plans)
    assert "events_id_key" in text, text  # the plans were seen
    assert "Seq Scan on events" not in text, text
    assert "Seq Scan on tree_hashes" not in text, text
    assert pg_store.verify().ok
