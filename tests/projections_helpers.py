"""Builders and fixtures shared by the projection tests.

Test files import it as `tests.projections_helpers` and re-export the fixtures they use.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from projections import (
    MalformedBody,
    Projection,
    ProjectionRunner,
    open_projections,
    projection_status,
)
from store import EventStore, NewEvent, SQLiteStore
from tests.support import payload, table_rows  # noqa: F401 -- re-exported for the projection tests

SAMPLE = "http://ik.imagekit.io/demo/sample-video.mp4"


def as_new_event(body: bytes) -> NewEvent:
    doc = orjson.loads(body)
    return NewEvent(doc["id"], doc["type"], doc["created_at"], body, "standard-webhooks")


def documented_events() -> list[NewEvent]:
    """The three documented video events of the sample asset, in the docs' order."""
    names = ("accepted", "ready", "error")
    return [as_new_event(payload(f"video.transformation.{n}")) for n in names]


def video_event(
    event_id: str,
    kind: str,
    created_at: str,
    *,
    asset: str = SAMPLE,
    request_id: str | None = "req-1",
    reason: str = "encoding_failed",
    quality: int = 10,
    fmt: str | None = "webm",
    ttype: str | None = "video-transformation",
) -> NewEvent:
    """A video.transformation.<kind> event shaped like ImageKit's (`fmt` None: no output
    format in its options; `ttype` None: no transformation type)."""
    options: dict = {"quality": quality} if fmt is None else {"format": fmt, "quality": quality}
    transformation: dict = {"options": options}
    if ttype is not None:
        transformation["type"] = ttype
    doc: dict = {
        "type": f"video.transformation.{kind}",
        "id": event_id,
        "created_at": created_at,
        "data": {"asset": {"url": asset}, "transformation": transformation},
    }
    if request_id is not None:
        doc["request"] = {"x_request_id": request_id, "url": f"{asset}?tr=f-webm,q-{quality}"}
    if kind == "ready":
        doc["timings"] = {"download_duration": 100, "encoding_duration": 900}
        transformation["output"] = {
            "url": f"{asset}?tr=f-webm,q-{quality}",
            "video_metadata": {"duration": 1.5, "width": 640, "height": 360, "bitrate": 1000},
        }
    elif kind == "error":
        transformation["error"] = {"reason": reason}
    return NewEvent(event_id, doc["type"], created_at, orjson.dumps(doc), "standard-webhooks")


def other_event(event_id: str, event_type: str, created_at: str) -> NewEvent:
    """An event of a type the timeline does not handle."""
    body = orjson.dumps({"type": event_type, "id": event_id, "created_at": created_at, "data": {}})
    return NewEvent(event_id, event_type, created_at, body, "standard-webhooks")


def poison_event(event_id: str, created_at: str) -> NewEvent:
    """A video event whose body is not JSON: the timeline cannot fold it."""
    return NewEvent(
        event_id, "video.transformation.ready", created_at, b"not json", "standard-webhooks"
    )


def copy_keeping_identity(store: SQLiteStore, path: Path) -> None:
    """A copy of the log at `path` that keeps its `log_id`, as a `cp` of the file does.

    (`backup` gives a copy an identity of its own; a file copied behind the store's back
    keeps it, and only the chain at the read models' checkpoint tells the two apart.)
    """
    from store.sqlite_engine import sqlite3

    store.backup(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("UPDATE log_meta SET value = ? WHERE key = 'log_id'", (store.log_id(),))
    finally:
        conn.close()


# A projection counting `file.created` events: it says which positions it saw, once each.
def _counter_setup(conn, t):
    conn.execute(f"CREATE TABLE IF NOT EXISTS {t.seen} (position INTEGER PRIMARY KEY)")


def _counter_reset(conn, t):
    conn.execute(f"DROP TABLE IF EXISTS {t.seen}")


def _counter_apply(conn, t, events):
    for event in events:
        # PRIMARY KEY: applying an event twice fails loudly.
        conn.execute(f"INSERT INTO {t.seen} (position) VALUES (?)", (event.position,))
        if b"boom" in event.body:
            raise MalformedBody("boom")


COUNTER = Projection(
    name="counter",
    version=1,
    handles=("file.created",),
    setup=_counter_setup,
    reset=_counter_reset,
    apply=_counter_apply,
    table_names=("seen",),
)


# What the layers above `store/` may use of a store: `store/contract.py`, nothing more.
CONTRACT = {n for n in vars(EventStore) if not n.startswith("_")} | {"display_name"}


class ContractOnly:
    """A store seen through its contract only, optionally without `sqlite_source`.

    Any other attribute (`path`, `backend`, …) raises AttributeError and is noted in
    `violations`, so even a `getattr(store, "path", None)` is caught by the test.
    Without `sqlite_source` a rebuild takes the generic path: staging from read_batches.
    """

    def __init__(self, store, *, sqlite_source: bool = True):
        self._store = store
        self._allowed = CONTRACT | ({"sqlite_source"} if sqlite_source else set())
        self.violations: list[str] = []
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        if name not in self._allowed:
            if name != "sqlite_source":  # asking whether the capability exists is allowed
                self.violations.append(name)
            raise AttributeError(name)
        self.calls.append(name)
        return getattr(self._store, name)


# How a rebuild reads the log: the store's SQLite relation, or staging from read_batches.
REBUILD_PATHS = ("sqlite-source", "staging")


def status_of(db, name: str = "timeline") -> dict:
    """The `projection_status` entry of one projection (the default set holds several)."""
    return next(s for s in projection_status(db) if s["name"] == name)


def through(store, path: str) -> ContractOnly:
    """The store as a rebuild taking `path` (one of REBUILD_PATHS) sees it."""
    return ContractOnly(store, sqlite_source=path == "sqlite-source")


@pytest.fixture
def log(tmp_path):
    store = SQLiteStore(tmp_path / "log.db")
    yield store
    store.close()


@pytest.fixture
def pdb(log, tmp_path):
    db = open_projections(log, tmp_path / "log.projections.db")
    yield db
    db.close()


@pytest.fixture
def runner(pdb):
    r = ProjectionRunner(pdb, idle_wait=0.02, backoff=(0.05, 0.2))
    yield r
    r.stop()
