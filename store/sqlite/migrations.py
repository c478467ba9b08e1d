"""Schema of the SQLite log, as sqlite-utils migrations applied at start-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..contract import new_log_id
from ..sqlite_engine import sqlite3

if TYPE_CHECKING:
    from sqlite_utils import Database

SET = "ikledger.store"  # the migration set's name in `_sqlite_migrations`
_STEPS: list[Callable[[Database], None]] = []  # in the order they apply


def migration(step: Callable[[Database], None]) -> Callable[[Database], None]:
    _STEPS.append(step)
    return step


# Both counter tables (`type_counts`, `delivery_counts`) hold the rows up to the last
# multiple of their fold at or below the newest one; readers count the rest.
TYPE_FOLD = 1024
DELIVERY_FOLD = 1024


@migration
def m001_events(db: Database) -> None:
    # `chain` precedes `body` so reading the chain never walks past a large body.
    # `received_at` is epoch milliseconds and `scheme` a small code (store/encoding.py);
    # `id`, `type`, `created_at` and `body` stay text/bytes that SQL reads directly.
    db["events"].create(
        {
            "position": int,
            "id": str,
            "type": str,
            "created_at": str,
            "received_at": int,
            "scheme": int,
            "chain": bytes,
            "body": bytes,
        },
        pk="position",
        not_null={"id", "type", "created_at", "received_at", "scheme", "chain", "body"},
    )
    db["events"].create_index(["id"], index_name="events_id", unique=True)
    # The database itself refuses to change the past, whoever asks.
    db.execute(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
    )


def _create_deliveries(db: Database, name: str, scheme_type: type) -> None:
    # One row per POST. A `stored` row holds only what its event row does not: outcome,
    # position and remote address; its time, status (200), event id, size and scheme are
    # those of the event (`SQLiteStore.deliveries` joins them back). Times and schemes
    # are encoded as in `events`.
    db[name].create(
        {
            "seq": int,
            "received_at": int,
            "outcome": str,
            "status": int,
            "reason": str,
            "event_id": str,
            "position": int,
            "body_sha256": bytes,
            "size": int,
            "remote_addr": str,
            "scheme": scheme_type,
            "body": bytes,  # kept only for conflicting redeliveries
        },
        pk="seq",
        not_null={"outcome"},
    )


def _create_journal_view(db: Database) -> None:
    # Partial index: pruning rejected rows must not cost an index on every delivery.
    db.execute("CREATE INDEX deliveries_rejected ON deliveries(seq) WHERE outcome = 'rejected'")
    # The journal as it reads: every column filled in, a stored row's from its event.
    db.create_view(
        "journal",
        "SELECT d.seq, coalesce(d.received_at, e.received_at) AS received_at, d.outcome, "
        "coalesce(d.status, 200) AS status, d.reason, coalesce(d.event_id, e.id) AS event_id, "
        "d.position, d.body_sha256, coalesce(d.size, length(e.body)) AS size, d.remote_addr, "
        "coalesce(d.scheme, e.scheme) AS scheme, d.body "
        "FROM deliveries AS d LEFT JOIN events AS e "
        "ON d.outcome = 'stored' AND e.position = d.position",
    )


@migration
def m002_deliveries(db: Database) -> None:
    # As first shipped: `scheme` TEXT, which turned the integer codes into "0"/"1" (m005).
    _create_deliveries(db, "deliveries", str)
    _create_journal_view(db)


@migration
def m003_type_counts(db: Database) -> None:
    # Counts of the events up to the last multiple of `TYPE_FOLD` positions; the
    # store adds the few events after it when asked (see SQLiteStore.stats).
    db["type_counts"].create({"type": str, "events": int}, pk="type", not_null={"events"})


@migration
def m004_write_probe(db: Database) -> None:
    # One row, rewritten by `SQLiteStore.check_writable`: a real committed write, so a
    # full disk or a read-only file fails it just as it fails an append.
    db["write_probe"].create({"id": int, "checked_at": str}, pk="id", not_null={"checked_at"})


@migration
def m005_deliveries_scheme_is_a_code(db: Database) -> None:
    # `deliveries.scheme` was TEXT, so SQLite stored the integer scheme codes as "0"/"1"
    # and the journal showed them undecoded. The table is copied into one whose
    # `scheme` is INTEGER (a name the store has no code for stays text), codes restored.
    _create_deliveries(db, "deliveries_new", int)
    db.execute(
        "INSERT INTO deliveries_new SELECT seq, received_at, outcome, status, reason, "
        "event_id, position, body_sha256, size, remote_addr, "
        "CASE WHEN scheme IN ('0', '1') THEN CAST(scheme AS INTEGER) ELSE scheme END, body "
        "FROM deliveries"
    )
    db.execute("DROP VIEW journal")
    db.execute("DROP TABLE deliveries")
    db.execute("ALTER TABLE deliveries_new RENAME TO deliveries")
    _create_journal_view(db)


@migration
def m006_delivery_counts(db: Database) -> None:
    # Journal rows by outcome up to the last multiple of `DELIVERY_FOLD` seqs, folded in
    # by the group commit that crosses it and lowered when rejected rows are pruned; the
    # store adds the few rows after it when asked (see SQLiteStore.stats).
    db["delivery_counts"].create(
        {"outcome": str, "deliveries": int}, pk="outcome", not_null={"deliveries"}
    )
    db.execute(
        "INSERT INTO delivery_counts (outcome, deliveries) SELECT outcome, count(*) "
        "FROM deliveries WHERE seq <= "
        f"(SELECT coalesce(max(seq), 0) / {DELIVERY_FOLD} * {DELIVERY_FOLD} FROM deliveries) "
        "GROUP BY outcome"
    )


@migration
def m007_redeliveries_by_position(db: Database) -> None:
    # The duplicates and conflicts of one event without scanning the journal. Only
    # redeliveries are indexed: a new event's row costs no index page in the group
    # commit (its stored row is found by bisection, see SQLiteStore.deliveries), and
    # refusals are found through `deliveries_rejected`, capped by `rejected_keep`.
    db.execute(
        "CREATE INDEX deliveries_redelivered ON deliveries(position) WHERE outcome != 'stored'"
    )


@migration
def m008_log_meta(db: Database) -> None:
    # The log's identity (`EventStore.log_id`), given once: when the log is created, or
    # by this migration to a log created before identities. A `backup` gives its copy
    # a new one; nothing else writes this table.
    db.execute("CREATE TABLE log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO log_meta (key, value) VALUES ('log_id', ?)", [new_log_id()])


@migration
def m009_forwarding(db: Database) -> None:
    # Forwarding's state beside the log (store/forwarding.py): mutable, outside the chain.
    # The same tables as PostgreSQL's 004_forwarding.sql; times are epoch milliseconds.
    for statement in FORWARDING_SCHEMA:
        db.execute(statement)


FORWARDING_SCHEMA = (
    """CREATE TABLE fwd_destinations (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT,
        types TEXT NOT NULL,            -- JSON array of shell patterns; [] is every type
        timeout_ms INTEGER NOT NULL,
        max_in_flight INTEGER NOT NULL,
        rate REAL,                      -- attempts per second; NULL is unlimited
        schedule TEXT NOT NULL,         -- retry delays in ms, comma-separated
        unordered INTEGER NOT NULL,
        paused INTEGER NOT NULL,
        pause_reason TEXT,
        created_ms INTEGER NOT NULL,
        cursor INTEGER NOT NULL,        -- last log position turned into deliveries
        last_success_ms INTEGER,
        last_failure_ms INTEGER,
        last_failure TEXT
    )""",
    """CREATE TABLE fwd_items (
        destination TEXT NOT NULL,
        position INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        key TEXT NOT NULL,              -- the ordering key (asset, file, folder or event id)
        state TEXT NOT NULL,            -- pending, delivered, failed
        attempts INTEGER NOT NULL,
        next_ms INTEGER NOT NULL,
        replay_job INTEGER,
        PRIMARY KEY (destination, position)
    ) WITHOUT ROWID""",
    "CREATE INDEX fwd_items_state ON fwd_items (destination, state, position)",
    """CREATE TABLE fwd_attempts (
        seq INTEGER PRIMARY KEY,
        destination TEXT NOT NULL,
        position INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        kind TEXT NOT NULL,             -- scheduled, replay
        replay_job INTEGER,
        started_ms INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        status INTEGER,
        error TEXT,
        response BLOB NOT NULL,
        next_ms INTEGER
    )""",
    "CREATE INDEX fwd_attempts_event ON fwd_attempts (event_id)",
    "CREATE INDEX fwd_attempts_item ON fwd_attempts (destination, position)",
    """CREATE TABLE fwd_replays (
        id INTEGER PRIMARY KEY,
        destination TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        selection TEXT NOT NULL,
        rate REAL,
        queued INTEGER NOT NULL
    )""",
    """CREATE TABLE fwd_leases (
        destination TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    )""",
)


@migration
def m010_merkle_tree(db: Database) -> None:
    # The Merkle tree's stored hashes (store/tlog/tree.py: index = stored_hash_index),
    # grown by every group commit, and the signed checkpoints: both append-only.
    db.execute("CREATE TABLE tree_hashes (idx INTEGER PRIMARY KEY, hash BLOB NOT NULL)")
    db.execute(
        "CREATE TABLE checkpoints (seq INTEGER PRIMARY KEY, added_at INTEGER NOT NULL, "
        "note BLOB NOT NULL)"
    )
    for table in ("tree_hashes", "checkpoints"):
        for change in ("UPDATE", "DELETE"):
            db.execute(
                f"CREATE TRIGGER {table}_no_{change.lower()} BEFORE {change} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
            )
    # An existing log gets its tree here, in one pass, inside the migration's transaction.
    from ..records import body_digest
    from ..tlog.tree import Frontier
    from .tree import grow

    frontier = Frontier()
    after = 0
    while True:
        rows = db.execute(
            "SELECT position, id, type, received_at, body FROM events WHERE position > ? "
            "ORDER BY position LIMIT 5000",
            [after],
        ).fetchall()
        if not rows:
            break
        leaves = [(p, i, t, r, body_digest(body)) for p, i, t, r, body in rows]
        db.conn.executemany(
            "INSERT INTO tree_hashes (idx, hash) VALUES (?, ?)", grow(frontier, leaves)
        )
        after = rows[-1][0]


@migration
def m011_rejections_by_time(db: Database) -> None:
    # Refused deliveries by time for `rejections` and `rejection_counts` (the overview's
    # refused deliveries page): a partial index, so stored rows never pay for it, that
    # holds reason and outcome so counting a range reads the index alone (SQLite does
    # not take the index's WHERE as covering `outcome`).
    db.execute(
        "CREATE INDEX deliveries_rejected_at ON deliveries(received_at, reason, outcome) "
        "WHERE outcome = 'rejected'"
    )


@migration
def m012_events_by_created_at(db: Database) -> None:
    # `read_batches(created_since=…)` (GET /events?since=): the positions of a
    # `created_at` range from the index alone (`type` included for a type filter).
    db.execute("CREATE INDEX events_created_at ON events (created_at, type)")


@migration
def m013_erasures(db: Database) -> None:
    # Retention and erasure (`EventStore.erase_bodies`): one `erasures` row per prune or
    # erase (when, why), one `erased_bodies` row per body removed (which position, the
    # body's SHA-256 and size, which the chain and the tree still need). Both append-only.
    db.execute(
        "CREATE TABLE erasures (seq INTEGER PRIMARY KEY, erased_at INTEGER NOT NULL, "
        "kind TEXT NOT NULL, reason TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE erased_bodies (position INTEGER PRIMARY KEY, "
        "erasure INTEGER NOT NULL REFERENCES erasures(seq), "
        "body_sha256 BLOB NOT NULL CHECK (length(body_sha256) = 32), size INTEGER NOT NULL)"
    )
    for table in ("erasures", "erased_bodies"):
        for change in ("UPDATE", "DELETE"):
            db.execute(
                f"CREATE TRIGGER {table}_no_{change.lower()} BEFORE {change} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
            )
    # An event may change in one way only: its body emptied, once its erasure is recorded.
    db.execute("DROP TRIGGER events_no_update")
    db.execute(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
        "WHEN NOT (NEW.position IS OLD.position AND NEW.id IS OLD.id "
        "AND NEW.type IS OLD.type AND NEW.created_at IS OLD.created_at "
        "AND NEW.received_at IS OLD.received_at AND NEW.scheme IS OLD.scheme "
        "AND NEW.chain IS OLD.chain AND NEW.body = X'' "
        "AND EXISTS (SELECT 1 FROM erased_bodies WHERE position = OLD.position)) "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
    )


# Positions per `created_blocks` row.
CREATED_BLOCK = 256


@migration
def m014_created_at_by_block(db: Database) -> None:
    # The `created_at` index (m012) cost 66 B per event, a ninth of the log; a range of
    # `created_at` (GET /events?since=) now reads only the blocks of CREATED_BLOCK
    # positions whose first and last `created_at` overlap it (`read_batches`): events
    # arrive about in the order they were created, so a range touches few blocks. The
    # trigger keeps the newest block's row current with every insert.
    db.execute("DROP INDEX IF EXISTS events_created_at")
    db.execute(
        "CREATE TABLE created_blocks (block INTEGER PRIMARY KEY, "
        "first_created TEXT NOT NULL, last_created TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO created_blocks (block, first_created, last_created) "
        f"SELECT (position - 1) / {CREATED_BLOCK}, min(created_at), max(created_at) "
        "FROM events GROUP BY 1"
    )
    db.execute(
        "CREATE TRIGGER events_created_blocks AFTER INSERT ON events BEGIN "
        "INSERT INTO created_blocks (block, first_created, last_created) "
        f"VALUES ((NEW.position - 1) / {CREATED_BLOCK}, NEW.created_at, NEW.created_at) "
        "ON CONFLICT (block) DO UPDATE SET "
        "first_created = min(first_created, excluded.first_created), "
        "last_created = max(last_created, excluded.last_created); END"
    )


@migration
def m015_forwarding_pending_by_key(db: Database) -> None:
    # Each key's oldest pending deliveries, one seek per key (`pending_by_key`): a key
    # with a long backlog must not hold the others out of the forwarder's window. The
    # same index as PostgreSQL's 011_forwarding_pending_by_key.sql.
    db.execute(
        "CREATE INDEX fwd_items_pending_key ON fwd_items (destination, key, position) "
        "WHERE state = 'pending'"
    )


def pending(conn: sqlite3.Connection) -> bool:
    """True unless every migration is recorded as applied; plain sqlite3, no sqlite-utils.

    Opening an up-to-date log then never imports sqlite-utils (a third of a CLI
    command's start-up).
    """
    try:
        rows = conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", (SET,)
        ).fetchall()
    except sqlite3.OperationalError:  # no such table: a new file
        return True
    return not {step.__name__ for step in _STEPS} <= {name for (name,) in rows}


def apply(db: Database, **options) -> None:
    """Apply pending migrations with sqlite-utils; a no-op on an up-to-date database.

    `options` go to `Migrations.apply` (`stop_before=` builds an old schema in tests).
    """
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(SET)
    for step in _STEPS:
        migrations()(step)
    migrations.apply(db, **options)
