"""The store contract (`store/contract.py`), one suite run against every backend.

Backends come from `tests/backends.py`; every test here uses only what the contract
declares, so a new backend passes by registering a factory there. Tampering with a
log is backend specific and lives beside each backend (`test_sqlite_store.py`).
"""

from __future__ import annotations

import io
import re
import threading
import time

import pytest

from receiver.events import export_events, import_events
from receiver.ingest.validation import parse_event
from store import (
    GENESIS,
    MAX_POSITION,
    NewEvent,
    Outcome,
    Rejection,
    StoreClosed,
    body_digest,
    chain_link,
    open_store,
)
from tests import backends
from tests.support import event_body, payload, payload_names
from tests.support import new_event as new

make_store = backends.make_store  # the fixtures, parametrised over every backend
store = backends.store

BOUND = 60.0  # seconds any helper thread may take before the test calls it a hang


def all_events(store) -> list:
    return [event for batch in store.read_batches(0, batch_size=64) for event in batch]


def run_threads(targets) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)
        assert not thread.is_alive(), "a thread hung"


def journal(store, event_id: str, *, flushed: int = 0) -> list:
    """The deliveries of `event_id`, once at least `flushed` of them are journalled.

    Refusals are journalled best effort with a later group, so the test appends and
    waits (bounded) for them instead of assuming when they land.
    """
    deadline = time.monotonic() + BOUND
    while True:
        rows = store.deliveries(event_id=event_id)
        if len(rows) >= flushed:
            return rows
        assert time.monotonic() < deadline, f"only {len(rows)} deliveries journalled"
        store.append(new(f"flush-{time.monotonic_ns()}"))


# -- appending ------------------------------------------------------------------


def test_duplicate_delivery_keeps_first_body_and_position(store):
    body = event_body("e1")
    first = store.append(new("e1", body))
    again = store.append(new("e1", body))
    assert (first.outcome, first.position) == (Outcome.STORED, 1)
    assert (again.outcome, again.position, again.duplicate) == (Outcome.DUPLICATE, 1, True)
    assert store.last_position() == 1


def test_duplicates_inside_one_batch_and_across_batches_give_the_original_position(store):
    a, b, c, d = (new(name) for name in "abcd")
    store.append_many([a, b])
    results = store.append_many([c, b, c, a, d])
    assert [(r.outcome, r.id, r.position) for r in results] == [
        (Outcome.STORED, "c", 3),
        (Outcome.DUPLICATE, "b", 2),
        (Outcome.DUPLICATE, "c", 3),
        (Outcome.DUPLICATE, "a", 1),
        (Outcome.STORED, "d", 4),
    ]
    assert [e.id for e in all_events(store)] == ["a", "b", "c", "d"]


def test_conflicting_redelivery_is_journalled_and_never_overwrites(store):
    original = event_body("e1")
    other = original.replace(b"accepted", b"ready")
    store.append(new("e1", original))
    second = event_body("e2")
    inside = store.append_many([new("e2", second), new("e2", second + b" ")])
    result = store.append(new("e1", other))
    assert (result.outcome, result.position) == (Outcome.CONFLICT, 1)
    assert [r.outcome for r in inside] == [Outcome.STORED, Outcome.CONFLICT]
    assert store.get("e1").body == original
    assert store.last_position() == 2
    rows = store.deliveries(event_id="e1")
    assert [(d.outcome, d.position, d.size) for d in rows] == [
        ("conflict", 1, len(other)),
        ("stored", 1, len(original)),
    ]
    assert store.verify().ok


def test_raw_bytes_are_kept_exactly(store):
    for index, name in enumerate(payload_names()):
        body = payload(name)
        store.append(
            NewEvent(f"id{index}", name, "2024-01-01T00:00:00.000Z", body, "x-ik-signature")
        )
        assert store.get(f"id{index}").body == body


def test_chain_links_every_event_to_the_one_before_from_genesis(store):
    store.append_many([new(f"e{n}") for n in range(5)])
    chain = GENESIS
    for event in all_events(store):
        chain = chain_link(chain, event.id, body_digest(event.body))
        assert event.chain == chain
    assert store.verify().head == chain == store.stats().head


def test_positions_are_gap_free_under_concurrent_appends(store):
    def worker(prefix: str):
        def run() -> None:
            for number in range(50):
                event = new(f"{prefix}-{number}")
                store.append(event)
                store.append(event)  # a redelivery never takes a position

        return run

    run_threads([worker(f"t{n}") for n in range(8)])
    assert [e.position for e in all_events(store)] == list(range(1, 401))
    assert store.verify().ok


def test_reader_sees_only_contiguous_prefixes_while_four_writers_append(store):
    """The visibility promise: once N is readable, so is every position below N."""
    writers, per_writer = 4, 60
    total = writers * per_writer
    finished = threading.Event()
    problems: list[str] = []
    observed: list[int] = []

    def writer(prefix: str):
        def run() -> None:
            number = 0
            while number < per_writer:
                size = min(1 + number % 3, per_writer - number)
                store.append_many([new(f"{prefix}-{number + k}") for k in range(size)])
                number += size

        return run

    def reader() -> None:
        deadline = time.monotonic() + BOUND
        previous = 0
        while time.monotonic() < deadline and not problems:
            done = finished.is_set()
            head = store.last_position()
            below = [e.position for e in store.get_positions(range(1, head + 1))]
            if below != list(range(1, head + 1)):
                problems.append(f"head {head} readable but not all below it: {below}")
            positions = [e.position for e in all_events(store)]
            if positions != list(range(1, len(positions) + 1)) or len(positions) < previous:
                problems.append(f"a read that is no prefix: {positions}")
            previous = len(positions)
            observed.append(previous)
            if done and previous == total:
                return
        problems.append(f"the reader stopped at {previous} of {total}")

    reading = threading.Thread(target=reader)
    reading.start()
    run_threads([writer(f"w{n}") for n in range(writers)])
    finished.set()
    reading.join(BOUND)
    assert not reading.is_alive()
    assert problems == []
    assert observed[-1] == total


def test_append_after_close_raises_store_closed(make_store):
    closed = make_store()
    closed.close()
    with pytest.raises(StoreClosed):
        closed.append(new("late"))


def test_healthy_store_is_writable(store):
    assert store.check_writable() is None


# -- reading --------------------------------------------------------------------


def test_empty_log_verifies_and_reports_position_zero(store):
    assert store.verify().ok and store.verify().events == 0
    assert store.last_position() == 0
    assert store.type_counts() == {}
    assert store.deliveries() == []


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


def test_read_batches_filters_a_created_at_range(store):
    for number in range(20):
        created = f"2024-01-{number + 1:02d}T00:00:00.000Z"
        kind = "file.created" if number % 2 else "video.transformation.ready"
        store.append(NewEvent(f"e{number}", kind, created, event_body(f"e{number}"), "s"))
    since, until = "2024-01-05T00:00:00.000Z", "2024-01-12T00:00:00.000Z"
    found = [
        e.id
        for b in store.read_batches(2, batch_size=3, created_since=since, created_until=until)
        for e in b
    ]
    assert found == [f"e{n}" for n in range(4, 12)]
    typed = store.read_batches(0, types=["file.created"], created_since=since, until=10)
    assert [e.id for b in typed for e in b] == ["e5", "e7", "e9"]
    assert list(store.read_batches(0, created_since="2999-01-01T00:00:00.000Z")) == []


@pytest.mark.parametrize("far", [MAX_POSITION, MAX_POSITION + 1, 2**80])
def test_positions_beyond_64_bits_select_nothing_and_never_fail(store, far):
    store.append_many([new("a"), new("b")])
    assert list(store.read_batches(far)) == []
    assert [e.id for b in store.read_batches(0, until=far) for e in b] == ["a", "b"]
    assert list(store.read_batches(-far)) == list(store.read_batches(0))
    assert [e.id for e in store.get_positions([2, far, -far])] == ["b"]


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
    assert stats.size_bytes > 0
    assert store.get("missing") is None


def test_deliveries_of_an_event_name_every_delivery_and_refusal_newest_first(store):
    body = event_body("e1")
    store.append(new("e1", body))
    store.append(NewEvent("e1", "file.created", "2024-01-01T00:00:00.000Z", body, "x-ik-signature"))
    store.append(new("e1", body.replace(b"accepted", b"ready")))
    store.record_rejection(
        Rejection("bad_signature", 401, event_id="e1", scheme="x-ik-signature", size=9)
    )
    store.record_rejection(Rejection("bad_signature", 401, event_id="other"))
    rows = journal(store, "e1", flushed=4)
    assert [(d.outcome, d.status, d.position, d.scheme) for d in rows] == [
        ("rejected", 401, None, "x-ik-signature"),
        ("conflict", 200, 1, "standard-webhooks"),
        ("duplicate", 200, 1, "x-ik-signature"),
        ("stored", 200, 1, "standard-webhooks"),
    ]
    assert all(d.event_id == "e1" and d.received_at.endswith("Z") for d in rows)
    assert rows[0].reason == "bad_signature" and rows[0].size == 9
    assert [d.seq for d in rows] == sorted((d.seq for d in rows), reverse=True)
    assert store.deliveries(event_id="never-seen") == []
    newest = store.deliveries(limit=2)
    assert len(newest) == 2 and newest[0].seq > newest[1].seq


def test_rejections_list_refusals_newest_first_and_count_them_by_reason(store):
    store.append(new("e1"))  # a stored delivery is no refusal
    refused = [
        Rejection("signature_expired", 401, remote_addr="10.0.0.1", size=120),
        Rejection("bad_signature", 401, event_id="x", size=7),
        Rejection("signature_expired", 401, remote_addr="10.0.0.2"),
        Rejection("too_large", 413, size=2_000_000),
    ]
    for rejection in refused:
        store.record_rejection(rejection)
        time.sleep(0.002)  # distinct times, so the range bounds below are exact
    deadline = time.monotonic() + BOUND
    while len(rows := store.rejections()) < 4:
        assert time.monotonic() < deadline, "refusals never journalled"
        store.append(new(f"flush-{time.monotonic_ns()}"))
    assert [(d.reason, d.status, d.remote_addr, d.size) for d in rows] == [
        ("too_large", 413, None, 2_000_000),
        ("signature_expired", 401, "10.0.0.2", None),
        ("bad_signature", 401, None, 7),
        ("signature_expired", 401, "10.0.0.1", 120),
    ]
    assert all(d.outcome == "rejected" and d.received_at.endswith("Z") for d in rows)
    assert store.rejection_counts() == {
        "bad_signature": 1,
        "signature_expired": 2,
        "too_large": 1,
    }
    # [since, until): the second and third refusals only
    since, until = rows[2].received_at, rows[0].received_at
    middle = store.rejections(since, until)
    assert [d.seq for d in middle] == [rows[1].seq, rows[2].seq]
    assert store.rejection_counts(since, until) == {"bad_signature": 1, "signature_expired": 1}
    assert [d.seq for d in store.rejections(limit=1)] == [rows[0].seq]
    assert store.rejections(until=rows[3].received_at) == []
    assert store.rejection_counts(since="2999-01-01T00:00:00.000Z") == {}


def test_type_counts_equal_a_count_of_the_events_read(store):
    types = ("video.transformation.accepted", "video.transformation.ready", "file.created")
    events = [new(f"e{n}", type_=types[n % 3]) for n in range(70)]
    store.append_many(events[:50])
    store.append_many(events[40:])  # 10 redeliveries
    counted: dict[str, int] = {}
    for event in all_events(store):
        counted[event.type] = counted.get(event.type, 0) + 1
    assert store.type_counts() == counted == store.stats().events_by_type
    assert sum(counted.values()) == 70


def test_stats_count_deliveries_by_outcome_as_the_journal_holds_them(store):
    events = [new(f"e{n}") for n in range(6)]
    store.append_many(events)
    store.append_many(events[:4])
    store.append(new("e0", b'{"other": "bytes"}'))
    store.record_rejection(Rejection("bad_signature", 401, event_id="refused"))
    journal(store, "refused", flushed=1)
    counted: dict[str, int] = {}
    for delivery in store.deliveries(limit=1000):
        counted[delivery.outcome] = counted.get(delivery.outcome, 0) + 1
    assert store.stats().deliveries == counted
    assert (counted["duplicate"], counted["conflict"], counted["rejected"]) == (4, 1, 1)


@pytest.fixture
def waits_only_on_wakes(monkeypatch):
    """Push the SQLite backend's poll for other processes' commits past the test's bound.

    A wait then ends early only if the append in this process wakes it. PostgreSQL's
    wake (a NOTIFY to another connection) is tested in tests/postgres/test_backend.py:
    its listener's poll cannot be lengthened without holding its connection open past
    the database's teardown.
    """
    monkeypatch.setattr("store.sqlite.store.WAIT_POLL", 10 * BOUND)


def test_wait_is_woken_by_an_append_in_another_thread(store, waits_only_on_wakes, monkeypatch):
    store.append(new("e0"))
    outcome: dict[str, int] = {}
    head_read = threading.Event()
    read_head = store.last_position

    def last_position() -> int:
        position = read_head()
        head_read.set()
        return position

    monkeypatch.setattr(store, "last_position", last_position)  # this instance only

    def wait() -> None:
        outcome["position"] = store.wait(1, timeout=5 * BOUND)

    waiter = threading.Thread(target=wait, daemon=True)  # a broken wake must not hang exit
    waiter.start()
    assert head_read.wait(BOUND)  # the waiter has seen position 1: it waits, or is about to
    store.append(new("e1"))
    waiter.join(BOUND)
    assert not waiter.is_alive(), "wait() was not woken by the append"
    assert outcome["position"] == 2


def test_wait_returns_after_its_timeout_when_nothing_comes(store):
    store.append(new("e0"))
    assert store.wait(0, timeout=BOUND) == 1  # already above: at once
    started = time.monotonic()
    assert store.wait(1, timeout=0.3) == 1
    waited = time.monotonic() - started
    assert 0.3 <= waited < BOUND / 2


# -- copies and names -------------------------------------------------------------


def test_export_then_import_reproduces_events_and_chain(store, make_store):
    for name in payload_names():
        parsed = parse_event(payload(name))
        store.append(
            NewEvent(parsed.id, parsed.type, parsed.created_at, payload(name), "x-ik-signature")
        )
    exported = io.BytesIO()
    assert export_events(store, exported) == len(payload_names())
    copy = make_store()
    lines = exported.getvalue().splitlines()
    assert import_events(copy, lines).stored == len(lines)
    assert import_events(copy, lines).duplicate == len(lines)  # idempotent
    assert [(e.position, e.id, e.body, e.chain, e.received_at) for e in all_events(copy)] == [
        (e.position, e.id, e.body, e.chain, e.received_at) for e in all_events(store)
    ]
    assert copy.verify().head == store.verify().head


def test_backup_writes_a_sqlite_log_that_open_store_verifies_with_the_same_head(store, tmp_path):
    store.append_many([new(f"e{number}") for number in range(30)])
    target = tmp_path / "backup.db"
    assert store.backup(str(target)) == 30
    copy = open_store(str(target))
    try:
        report = copy.verify()
        assert report.ok and report.events == 30 and report.head == store.verify().head
        assert [(e.id, e.body, e.chain) for e in all_events(copy)] == [
            (e.id, e.body, e.chain) for e in all_events(store)
        ]
    finally:
        copy.close()


def test_display_names_tell_two_logs_apart_and_hold_no_password(make_store):
    first, second = make_store(), make_store()
    assert first.display_name != second.display_name
    for store in (first, second):
        assert isinstance(store.display_name, str) and store.display_name
        assert not re.search(r"://[^/@]*:[^/@]*@", store.display_name), store.display_name


def test_conflicting_bodies_are_handed_out_oldest_first(store):
    original = event_body("e1")
    first, second = original.replace(b"accepted", b"ready"), original + b"\n"
    store.append(new("e1", original))
    store.append(new("e1", original))  # a true duplicate: no conflicting body
    store.append(new("e1", first))
    store.append_many([new("e2", event_body("e2")), new("e1", second)])
    found = store.conflicts("e1")
    assert [c.body for c in found] == [first, second]
    journal = {d.seq: d for d in store.deliveries(event_id="e1")}
    assert [journal[c.seq].outcome for c in found] == ["conflict", "conflict"]
    assert [c.received_at for c in found] == [journal[c.seq].received_at for c in found]
    assert store.conflicts("e2") == [] and store.conflicts("never-seen") == []
