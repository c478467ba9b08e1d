"""The forwarding state in SQL, shared by both backends (`store/forwarding.py`'s contract).

The tables are the same on SQLite (`sqlite/migrations.py`, m009) and PostgreSQL
(`postgres/migrations/004_forwarding.sql`), and so are these statements: written with
`?` placeholders, which a backend may rewrite for its driver. A backend supplies one
thing: `_transaction()`, a context manager yielding a `Run` inside one transaction
(`run(sql, params) -> rows`, `run.many(sql, rows) -> rows changed`), its driver errors
translated to the store's.

The forwarder's per-attempt writes go by batches: a group of attempts is journalled
with one look-up of the deliveries still pending and one `many` per statement, and a
batch of new events is queued with one `many`: a statement per row cost the journal
about as much CPU per forwarded event as everything else the forwarder does but HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from .forwarding import (
    ATTEMPTS_KEEP,
    DELIVERED,
    FAILED,
    PENDING,
    STATES,
    Attempt,
    Destination,
    DestinationExists,
    Item,
    PendingWindow,
    Queued,
    ReplayJob,
    UnknownDestination,
)


class Run(Protocol):
    """The statements of one transaction."""

    def __call__(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Run one statement; its rows (none for a statement that returns none)."""
        ...

    def many(self, sql: str, rows: Sequence[Sequence]) -> int:
        """Run one statement (returning nothing) once per row; the rows it changed in all."""
        ...


# The database's own clock in epoch milliseconds, so that every receiver judges a
# lease's expiry by one clock (a backend replaces it by its dialect's expression).
NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
PRUNE_EVERY = 256  # journal rows between two prunings

DESTINATION_COLUMNS = (
    "name, url, secret, types, timeout_ms, max_in_flight, rate, schedule, unordered, paused, "
    "pause_reason, created_ms, cursor, last_success_ms, last_failure_ms, last_failure"
)
ITEM_COLUMNS = "destination, position, event_id, key, state, attempts, next_ms, replay_job"
ATTEMPT_COLUMNS = (
    "destination, position, event_id, number, kind, replay_job, started_ms, duration_ms, "
    "status, error, response, next_ms, seq"
)

INSERT_ITEM = f"""
INSERT INTO fwd_items ({ITEM_COLUMNS}) VALUES (?, ?, ?, ?, 'pending', 0, ?, NULL)
ON CONFLICT (destination, position) DO NOTHING
"""
# A replay queues a delivered or failed event again; a pending one stays as it is.
REQUEUE_ITEM = f"""
INSERT INTO fwd_items ({ITEM_COLUMNS}) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)
ON CONFLICT (destination, position) DO UPDATE
SET state = 'pending', attempts = 0, next_ms = excluded.next_ms, replay_job = excluded.replay_job
WHERE fwd_items.state <> 'pending'
"""
RECORD_ITEM = """
UPDATE fwd_items SET state = ?, attempts = ?, next_ms = ?
WHERE destination = ? AND position = ? AND state = 'pending'
"""
INSERT_ATTEMPT = f"""
INSERT INTO fwd_attempts ({ATTEMPT_COLUMNS.removesuffix(", seq")})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# The deliveries of a group still pending, locked until the group commits where the
# backend has row locks (`lock_rows_sql`): nothing else may end them meanwhile.
STILL_PENDING = """
SELECT position FROM fwd_items
WHERE destination = ? AND state = 'pending' AND position IN ({marks}){lock}
"""
IN_LIST = 500  # positions per IN (...) list: far below either backend's parameter limit
# Attempts of delivered events, oldest first, beyond the journal's cap.
PRUNE_ATTEMPTS = """
DELETE FROM fwd_attempts WHERE seq IN (
    SELECT a.seq FROM fwd_attempts AS a JOIN fwd_items AS i
        ON i.destination = a.destination AND i.position = a.position
    WHERE i.state = 'delivered'
    ORDER BY a.seq
    LIMIT ?
)
"""
# The keys with pending deliveries, one index seek each (a skip scan of the partial index
# `fwd_items_pending_key`, whatever the number of deliveries of a key), in key order, at
# most ? of them, with each key's oldest and newest pending positions.
PENDING_KEYS = """
WITH RECURSIVE keys (key, n) AS (
    SELECT min(key), 1 FROM fwd_items WHERE destination = ? AND state = 'pending'
    UNION ALL
    SELECT (SELECT min(i.key) FROM fwd_items AS i
            WHERE i.destination = ? AND i.state = 'pending' AND i.key > keys.key), keys.n + 1
    FROM keys WHERE keys.key IS NOT NULL AND keys.n < ?
)
SELECT keys.key,
       (SELECT min(i.position) FROM fwd_items AS i
        WHERE i.destination = ? AND i.state = 'pending' AND i.key = keys.key),
       (SELECT max(i.position) FROM fwd_items AS i
        WHERE i.destination = ? AND i.state = 'pending' AND i.key = keys.key)
FROM keys WHERE keys.key IS NOT NULL
"""
# The first ? pending deliveries of the keys whose oldest pending positions are given,
# one index seek per delivery.
KEY_PREFIXES = """
WITH RECURSIVE chain (key, position, depth) AS (
    SELECT key, position, 1 FROM fwd_items WHERE destination = ? AND position IN ({marks})
    UNION ALL
    SELECT chain.key, (SELECT min(i.position) FROM fwd_items AS i
                       WHERE i.destination = ? AND i.state = 'pending' AND i.key = chain.key
                       AND i.position > chain.position), chain.depth + 1
    FROM chain WHERE chain.position IS NOT NULL AND chain.depth < ?
)
SELECT {columns} FROM fwd_items
WHERE destination = ? AND state = 'pending' AND position IN (SELECT position FROM chain)
"""
# A destination's pending deliveries, to be narrowed.
PENDING_ROWS = f"SELECT {ITEM_COLUMNS} FROM fwd_items WHERE destination = ? AND state = 'pending'"
ACQUIRE_LEASE = """
INSERT INTO fwd_leases (destination, holder, expires_ms) VALUES (?, ?, {now} + ?)
ON CONFLICT (destination) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
WHERE fwd_leases.holder = excluded.holder OR fwd_leases.expires_ms < {now}
RETURNING holder
"""


def destination_row(d: Destination) -> tuple:
    return (
        d.name,
        d.url,
        d.secret,
        json.dumps(list(d.types)),
        round(d.timeout * 1000),
        d.max_in_flight,
        d.rate,
        ",".join(str(ms) for ms in d.schedule_ms),
        int(d.unordered),
        int(d.paused),
        d.pause_reason,
        d.created_ms,
        d.cursor,
        d.last_success_ms,
        d.last_failure_ms,
        d.last_failure,
    )


def destination(row: Sequence) -> Destination:
    (name, url, secret, types, timeout_ms, max_in_flight, rate, schedule, unordered, paused) = row[
        :10
    ]
    return Destination(
        name,
        url,
        secret,
        tuple(json.loads(types)),
        timeout_ms / 1000,
        max_in_flight,
        rate,
        tuple(int(ms) for ms in schedule.split(",") if ms),
        bool(unordered),
        bool(paused),
        *row[10:],
    )


def attempt(row: Sequence) -> Attempt:
    values = list(row)
    values[10] = bytes(values[10] or b"")
    return Attempt(*values)


def _first_of_each_key(
    items: Sequence[Item], per_key: int, *, room: int | None = None
) -> tuple[list[Item], set[str]]:
    """Of `items` (in position order), each key's first `per_key`, at most `room` in all
    (each key's first before any key's second, and so on); and the keys left out."""
    ranked = []
    rank: dict[str, int] = {}
    left_out: set[str] = set()
    for item in items:
        n = rank.get(item.key, 0)
        rank[item.key] = n + 1
        if n < per_key:
            ranked.append((n, item.position, item))
        else:
            left_out.add(item.key)
    ranked.sort(key=lambda entry: entry[:2])
    if room is not None:
        left_out.update(entry[2].key for entry in ranked[room:])
        del ranked[room:]
    return [entry[2] for entry in ranked], left_out


class SQLForwardingState:
    """`ForwardingState` over the shared tables; a backend supplies `_transaction`."""

    now_ms_sql = NOW_MS
    lock_rows_sql = ""  # appended to a SELECT to lock its rows (PostgreSQL: FOR UPDATE)

    def __init__(self, *, attempts_keep: int = ATTEMPTS_KEEP):
        self.attempts_keep = attempts_keep
        self.prune_every = PRUNE_EVERY
        self._journalled = 0  # attempts journalled through this object since its last pruning

    def _transaction(self, *, write: bool = True) -> AbstractContextManager[Run]:
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._transaction(write=False) as run:
            return run(sql, params)

    def _require(self, run: Run, name: str) -> None:
        if not run("SELECT 1 FROM fwd_destinations WHERE name = ?", (name,)):
            raise UnknownDestination(f"no destination named {name!r}")

    # -- destinations ---------------------------------------------------------------

    def add_destination(self, destination: Destination) -> None:
        marks = ", ".join("?" * 16)
        with self._transaction() as run:
            if run("SELECT 1 FROM fwd_destinations WHERE name = ?", (destination.name,)):
                raise DestinationExists(f"a destination named {destination.name!r} exists")
            run(
                f"INSERT INTO fwd_destinations ({DESTINATION_COLUMNS}) VALUES ({marks})",
                destination_row(destination),
            )

    def destination(self, name: str) -> Destination | None:
        rows = self._read(
            f"SELECT {DESTINATION_COLUMNS} FROM fwd_destinations WHERE name = ?", (name,)
        )
        return destination(rows[0]) if rows else None

    def destinations(self) -> list[Destination]:
        rows = self._read(f"SELECT {DESTINATION_COLUMNS} FROM fwd_destinations ORDER BY name")
        return [destination(row) for row in rows]

    def set_paused(self, name: str, paused: bool, reason: str | None = None) -> None:
        with self._transaction() as run:
            self._require(run, name)
            run(
                "UPDATE fwd_destinations SET paused = ?, pause_reason = ? WHERE name = ?",
                (int(paused), reason if paused else None, name),
            )

    def remove_destination(self, name: str) -> None:
        with self._transaction() as run:
            self._require(run, name)
            for table in ("fwd_attempts", "fwd_items", "fwd_replays", "fwd_leases"):
                run(f"DELETE FROM {table} WHERE destination = ?", (name,))
            run("DELETE FROM fwd_destinations WHERE name = ?", (name,))

    # -- deliveries -----------------------------------------------------------------

    def enqueue(
        self,
        name: str,
        items: Sequence[Queued],
        *,
        due_ms: int,
        cursor: int | None = None,
        replay_job: int | None = None,
    ) -> int:
        with self._transaction() as run:
            self._require(run, name)
            if replay_job is None:
                queued = run.many(
                    INSERT_ITEM, [(name, i.position, i.event_id, i.key, due_ms) for i in items]
                )
            else:
                queued = run.many(
                    REQUEUE_ITEM,
                    [(name, i.position, i.event_id, i.key, due_ms, replay_job) for i in items],
                )
            if cursor is not None:
                run(
                    "UPDATE fwd_destinations SET cursor = ? WHERE name = ? AND cursor < ?",
                    (cursor, name, cursor),
                )
        return queued

    def _changes(self, run: Run, sql: str, params: Sequence) -> int:
        """Rows changed by one INSERT/UPDATE (RETURNING 1 counts them on both backends)."""
        return len(run(sql.rstrip() + " RETURNING 1", params))

    def requeue_failed(self, name: str, *, replay_job: int, due_ms: int) -> int:
        with self._transaction() as run:
            self._require(run, name)
            return self._changes(
                run,
                "UPDATE fwd_items SET state = 'pending', attempts = 0, next_ms = ?, "
                "replay_job = ? WHERE destination = ? AND state = 'failed'",
                (due_ms, replay_job, name),
            )

    def pending(self, name: str, *, limit: int = 1000) -> list[Item]:
        return self.items(name, PENDING, limit=limit)

    def pending_by_key(self, name: str, *, limit: int = 1000) -> PendingWindow:
        """The oldest `limit` pending deliveries while they span `limit` keys (or are all);
        else each key's oldest few, for the keys with the oldest pending deliveries.

        Costs a read of `limit` rows, plus, when a few keys fill them, three seeks per key
        (up to `limit` + 1 keys) and one per delivery held of the keys not among those
        rows: never a walk past one key's backlog. Past `limit` keys, the keys beyond
        the oldest deliveries are the oldest of the first `limit` + 1 by name.
        """
        with self._transaction(write=False) as run:
            oldest = [
                Item(*row)
                for row in run(f"{PENDING_ROWS} ORDER BY position LIMIT ?", (name, limit + 1))
            ]
            heads: dict[str, int] = {}  # key -> its oldest pending position, oldest first
            for item in oldest[:limit]:
                heads.setdefault(item.key, item.position)
            if len(oldest) <= limit:  # every pending delivery
                per_key = max(1, limit // max(2, len(heads) + 1))  # no key past half
                return PendingWindow(oldest, False, per_key, frozenset(), True)
            del oldest[limit:]
            if len(heads) == limit:  # one each of the keys with the oldest deliveries
                return PendingWindow(oldest, True, 1, frozenset(heads), False)
            # A few keys fill the oldest deliveries: find the others.
            found = run(PENDING_KEYS, (name, name, limit + 1, name, name))
            every_key = len(found) <= limit
            newest = {key: last for key, _, last in found}
            others = sorted((first, key) for key, first, _ in found if key not in heads)
            others = others[: limit - len(heads)]
            share = max(1, limit // (len(heads) + len(others) + 1))
            # The others' first share + 1 deliveries: the last tells a key has more. With
            # a share of one (many keys), only their oldest.
            prefixes: list[Item] = []
            positions = [position for position, _ in others]
            for i in range(0, len(positions), IN_LIST):
                chunk = positions[i : i + IN_LIST]
                marks = ", ".join("?" * len(chunk))
                if share == 1:
                    sql = f"{PENDING_ROWS} AND position IN ({marks})"
                    params: tuple = (name, *chunk)
                else:
                    sql = KEY_PREFIXES.format(marks=marks, columns=ITEM_COLUMNS)
                    params = (name, *chunk, name, share + 1, name)
                prefixes.extend(Item(*r) for r in run(sql, params))
        items, open_keys = _first_of_each_key(prefixes, share)
        # The oldest deliveries fill the rest, each key's first ones first, no key past
        # half the limit (room for new events of the others).
        kept, left_out = _first_of_each_key(oldest, max(1, limit // 2), room=limit - len(items))
        open_keys |= left_out
        # A key has more than it holds when its newest pending delivery is not held (a
        # key not found by the scan, past `limit` keys, is taken to have).
        held = {item.position for item in items} | {item.position for item in kept}
        open_keys.update(k for k in heads if newest.get(k) not in held)
        if share == 1:
            open_keys.update(item.key for item in items if newest[item.key] != item.position)
        items = sorted(items + kept, key=lambda item: item.position)
        return PendingWindow(items, True, share, frozenset(open_keys), every_key)

    def items(self, name: str, state: str, *, limit: int = 100) -> list[Item]:
        rows = self._read(
            f"SELECT {ITEM_COLUMNS} FROM fwd_items WHERE destination = ? AND state = ? "
            "ORDER BY position LIMIT ?",
            (name, state, limit),
        )
        return [Item(*row) for row in rows]

    def counts(self, name: str) -> dict[str, int]:
        rows = self._read(
            "SELECT state, count(*) FROM fwd_items WHERE destination = ? GROUP BY state", (name,)
        )
        found = dict(rows)
        return {state: int(found.get(state, 0)) for state in STATES}

    def record_attempt(self, attempt: Attempt, state: str) -> bool:
        return self.record_attempts([(attempt, state)])[0]

    def record_attempts(self, outcomes: Sequence[tuple[Attempt, str]]) -> list[bool]:
        for _, state in outcomes:
            if state not in STATES:
                raise ValueError(f"not a delivery state: {state!r}")
        with self._transaction() as run:
            recorded = self._still_pending(run, outcomes)
            kept = [(a, s) for (a, s), ok in zip(outcomes, recorded, strict=True) if ok]
            run.many(
                RECORD_ITEM,
                [
                    (
                        state,
                        a.number,
                        a.next_ms if a.next_ms is not None else a.started_ms,
                        a.destination,
                        a.position,
                    )
                    for a, state in kept
                ],
            )
            run.many(INSERT_ATTEMPT, [a[:-1] for a, _ in kept])
            self._set_last(run, kept)
            self._journalled += len(kept)
            if kept and self._journalled >= self.prune_every:
                self._journalled = 0
                self._prune(run)
        return recorded

    def _still_pending(self, run: Run, outcomes: Sequence[tuple[Attempt, str]]) -> list[bool]:
        """Whether each attempt is journalled: its delivery is still pending when it comes
        (it was not removed or ended meanwhile, nor by an earlier attempt of the group)."""
        pending: set[tuple[str, int]] = set()
        wanted: dict[str, list[int]] = {}
        for a, _ in outcomes:
            wanted.setdefault(a.destination, []).append(a.position)
        for name, positions in wanted.items():
            for i in range(0, len(positions), IN_LIST):
                chunk = positions[i : i + IN_LIST]
                sql = STILL_PENDING.format(
                    marks=", ".join("?" * len(chunk)), lock=self.lock_rows_sql
                )
                pending.update((name, row[0]) for row in run(sql, (name, *chunk)))
        recorded = []
        for a, state in outcomes:
            delivery = (a.destination, a.position)
            recorded.append(delivery in pending)
            if state != PENDING:  # ended: a later attempt of it in the group is not journalled
                pending.discard(delivery)
        return recorded

    def _set_last(self, run: Run, outcomes: Sequence[tuple[Attempt, str]]) -> None:
        """Set each destination's last success and last failure: one update of its row
        per group, not one per attempt."""
        last: dict[tuple[str, bool], tuple] = {}
        for attempt, state in outcomes:
            ended = attempt.started_ms + attempt.duration_ms
            if state == DELIVERED:
                last[(attempt.destination, True)] = (ended,)
            else:
                reason = f"HTTP {attempt.status}" if attempt.status else attempt.error
                if state == FAILED:
                    reason = f"{reason}; given up after attempt {attempt.number}"
                last[(attempt.destination, False)] = (ended, reason)
        for (name, success), values in last.items():
            if success:
                sql = "UPDATE fwd_destinations SET last_success_ms = ? WHERE name = ?"
            else:
                sql = (
                    "UPDATE fwd_destinations SET last_failure_ms = ?, last_failure = ? "
                    "WHERE name = ?"
                )
            run(sql, (*values, name))

    def _prune(self, run: Run) -> None:
        total = run("SELECT count(*) FROM fwd_attempts", ())[0][0]
        if total > self.attempts_keep:
            run(PRUNE_ATTEMPTS, (total - self.attempts_keep,))

    def attempts(
        self, *, event_id: str | None = None, destination: str | None = None, limit: int = 100
    ) -> list[Attempt]:
        where, params = [], []
        if event_id is not None:
            where.append("event_id = ?")
            params.append(event_id)
        if destination is not None:
            where.append("destination = ?")
            params.append(destination)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._read(
            f"SELECT {ATTEMPT_COLUMNS} FROM fwd_attempts {clause}ORDER BY seq DESC LIMIT ?",
            (*params, limit),
        )
        return [attempt(row) for row in rows]

    # -- replays --------------------------------------------------------------------

    def create_replay(self, name: str, selection: str, rate: float | None) -> int:
        with self._transaction() as run:
            self._require(run, name)
            return run(
                "INSERT INTO fwd_replays (destination, created_ms, selection, rate, queued) "
                f"VALUES (?, {self.now_ms_sql}, ?, ?, 0) RETURNING id",
                (name, selection, rate),
            )[0][0]

    def set_replay_queued(self, job: int, queued: int) -> None:
        with self._transaction() as run:
            run("UPDATE fwd_replays SET queued = ? WHERE id = ?", (queued, job))

    def replays(self, name: str) -> list[ReplayJob]:
        rows = self._read(
            "SELECT id, destination, created_ms, selection, rate, queued FROM fwd_replays "
            "WHERE destination = ? ORDER BY id",
            (name,),
        )
        return [ReplayJob(*row) for row in rows]

    # -- leases ---------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        sql = ACQUIRE_LEASE.format(now=self.now_ms_sql)
        with self._transaction() as run:
            return bool(run(sql, (name, holder, round(ttl * 1000))))

    def release_lease(self, name: str, holder: str) -> None:
        with self._transaction() as run:
            run("DELETE FROM fwd_leases WHERE destination = ? AND holder = ?", (name, holder))

    def lease_holder(self, name: str) -> str | None:
        rows = self._read(
            f"SELECT holder FROM fwd_leases WHERE destination = ? AND expires_ms >= {self.now_ms_sql}",
            (name,),
        )
        return rows[0][0] if rows else None
