"""The store contract, run against every backend (SQLite now; PostgreSQL slots in here)."""

from __future__ import annotations

import io
import threading

import pytest

from receiver.admin import export_events, import_events
from receiver.validation import parse_event
from store import NewEvent, Outcome, SQLiteStore
from tests.support import event_body, payload, payload_names
from tests.support import new_event as new

BACKENDS = {"sqlite": lambda tmp_path, name: SQLiteStore(tmp_path / f"{name}.db")}


@pytest.fixture(params=sorted(BACKENDS))
def open_backend(request, tmp_path):
    """Opens stores of the parametrised backend; closes them all afterwards."""
    opened = []

    def factory(name: str = "log"):
        store = BACKENDS[request.param](tmp_path, name)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_backend):
    return open_backend()


def test_duplicate_delivery_keeps_first_body_and_position(store):
    body = event_body("e1")
    first = store.append(new("e1", body))
    again = store.append(new("e1", body))
    assert (first.outcome, first.position) == (Outcome.STORED, 1)
    assert (again.outcome, again.position, again.duplicate) == (Outcome.DUPLICATE, 1, True)
    assert store.last_position() == 1


def test_raw_bytes_are_kept_exactly(store):
    for index, name in enumerate(payload_names()):
        body = payload(name)
        store.append(
            NewEvent(f"id{index}", name, "2024-01-01T00:00:00.000Z", body, "x-ik-signature")
        )
        assert store.get(f"id{index}").body == body


def test_positions_are_gap_free_under_concurrent_appends(store):
    def worker(prefix: str) -> None:
        for number in range(50):
            event = new(f"{prefix}-{number}")
            store.append(event)
            store.append(event)  # a redelivery never takes a position

    threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    positions = [e.position for batch in store.read_batches(0, batch_size=64) for e in batch]
    assert positions == list(range(1, 401))
    assert store.verify().ok


def test_empty_log_verifies_and_reports_position_zero(store):
    assert store.verify().ok and store.verify().events == 0
    assert store.last_position() == 0


def test_read_batches_streams_in_order_with_type_filter(store):
    for number in range(25):
        store.append(
            new(
                f"e{number}",
                type_="file.created" if number % 5 == 0 else "video.transformation.ready",
            )
        )
    batches = list(store.read_batches(3, batch_size=7, types=["file.created"]))
    assert [e.position for b in batches for e in b] == [6, 11, 16, 21]
    assert [len(b) for b in store.read_batches(0, batch_size=10, until=23)] == [10, 10, 3]


def test_export_then_import_reproduces_events_and_chain(store, open_backend):
    for name in payload_names():
        parsed = parse_event(payload(name))
        store.append(
            NewEvent(parsed.id, parsed.type, parsed.created_at, payload(name), "x-ik-signature")
        )
    exported = io.BytesIO()
    assert export_events(store, exported) == len(payload_names())
    copy = open_backend("copy")
    lines = exported.getvalue().splitlines()
    assert import_events(copy, lines).stored == len(lines)
    assert import_events(copy, lines).duplicate == len(lines)  # idempotent
    original = [e for b in store.read_batches() for e in b]
    imported = [e for b in copy.read_batches() for e in b]
    assert [(e.position, e.id, e.body, e.chain, e.received_at) for e in imported] == [
        (e.position, e.id, e.body, e.chain, e.received_at) for e in original
    ]
    assert copy.verify().head == store.verify().head


def test_backup_is_a_verifying_copy(store, open_backend, tmp_path):
    for number in range(30):
        store.append(new(f"e{number}"))
    assert store.backup(str(tmp_path / "backup.db")) == 30
    copy = SQLiteStore(tmp_path / "backup.db")
    try:
        assert copy.verify().ok and copy.verify().head == store.verify().head
    finally:
        copy.close()


def test_get_positions_and_stats(store):
    for number in range(5):
        store.append(
            new(f"e{number}", type_="file.created" if number < 2 else "video.transformation.ready")
        )
    assert [e.id for e in store.get_positions([4, 2, 9])] == ["e1", "e3"]
    stats = store.stats()
    assert stats.events == stats.last_position == 5
    assert stats.events_by_type == {"file.created": 2, "video.transformation.ready": 3}
    assert stats.deliveries == {"stored": 5}
    assert store.get("missing") is None
