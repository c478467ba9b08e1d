"""`created_at` ranges on SQLite without a per-event index: blocks of positions and their span."""

from __future__ import annotations

import random

import pytest

from store import NewEvent, SQLiteStore
from store.sqlite.migrations import CREATED_BLOCK
from store.sqlite_engine import sqlite3

TYPES = ("file.created", "video.transformation.ready")


def events(count: int, seed: int, start: int = 0) -> list[NewEvent]:
    """Events created about in order, with a few stragglers from long ago and far ahead."""
    rng = random.Random(seed)
    out = []
    for n in range(start, start + count):
        minute = n + rng.randint(-3, 3)
        if rng.random() < 0.01:
            minute = rng.choice([-10_000, 50_000])
        day, minute = divmod(minute + 20_000, 1440)
        created = f"2024-{1 + day // 28:02d}-{1 + day % 28:02d}T{minute // 60:02d}:{minute % 60:02d}:00.000Z"
        out.append(NewEvent(f"e{n}", rng.choice(TYPES), created, b'{"n":%d}' % n, "s"))
    return out


def brute(store, after, until, types, since, before) -> list[int]:
    return [
        e.position
        for b in store.read_batches(after, until=until)
        for e in b
        if (types is None or e.type in types)
        and (since is None or e.created_at >= since)
        and (before is None or e.created_at <= before)
    ]


def ranges(store, seed: int, count: int = 60):
    rng = random.Random(seed)
    times = sorted(e.created_at for b in store.read_batches(0) for e in b)
    for _ in range(count):
        since, before = sorted(rng.sample(times, 2))
        yield (
            rng.choice([0, 0, rng.randint(0, len(times))]),
            rng.choice([None, rng.randint(0, len(times))]),
            rng.choice([None, [TYPES[0]]]),
            rng.choice([None, since]),
            rng.choice([before, None]) if since else before,
            rng.choice([1, 7, 100, 1000]),
        )


def test_created_at_ranges_read_the_right_events_with_no_index_per_event(db_path):
    with SQLiteStore(db_path) as store:
        store.append_many(events(5 * CREATED_BLOCK + 17, 1))
        for after, until, types, since, before, size in ranges(store, 2):
            got = [
                e.position
                for b in store.read_batches(
                    after,
                    batch_size=size,
                    until=until,
                    types=types,
                    created_since=since,
                    created_until=before,
                )
                for e in b
            ]
            assert got == brute(store, after, until, types, since, before)
    conn = sqlite3.connect(db_path)
    indexes = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        " AND sql LIKE '%created_at%'"
    ).fetchall()
    blocks = conn.execute("SELECT count(*) FROM created_blocks").fetchone()[0]
    conn.close()
    assert indexes == [] and blocks == 6


def test_events_appended_during_a_range_read_are_read_too(store):
    store.append_many(events(CREATED_BLOCK + 3, 3))
    reading = store.read_batches(0, batch_size=10, created_since="2000-01-01T00:00:00.000Z")
    first = next(reading)
    store.append_many(events(40, 4, start=CREATED_BLOCK + 3))
    rest = [e.position for b in reading for e in b]
    assert [e.position for e in first] + rest == list(range(1, CREATED_BLOCK + 44))


def sample(store) -> list[list[int]]:
    return [
        [e.position for b in store.read_batches(r[0], created_since=r[3]) for e in b]
        for r in ranges(store, 6, 10)
    ]


@pytest.mark.parametrize("count", [2, CREATED_BLOCK, 3 * CREATED_BLOCK + 5])
def test_an_existing_log_gets_its_blocks_by_migration(tmp_path, count):
    from sqlite_utils import Database

    from store.sqlite import migrations

    with SQLiteStore(tmp_path / "new.db") as new:
        new.append_many(events(count, 5))
        expected = sample(new)
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrations.apply(Database(conn), stop_before="m014_created_at_by_block")
    conn.execute("ATTACH DATABASE ? AS new", (str(tmp_path / "new.db"),))
    for table in ("events", "tree_hashes"):
        conn.execute(f"INSERT INTO {table} SELECT * FROM new.{table}")
    conn.execute("DETACH DATABASE new")
    conn.close()
    with SQLiteStore(old) as migrated:
        assert sample(migrated) == expected
        assert migrated.verify().ok
