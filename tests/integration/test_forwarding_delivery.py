"""Forwarding against a real HTTP server on loopback: faults, order per asset, replay, pause.

Each test runs the supervisor (`forwarding.run`) in a thread over a real SQLite log
with short schedules and timeouts, and waits (bounded) for what the endpoint receives.
"""

from __future__ import annotations

import json
import time

import pytest

import forwarding
from forwarding import Settings
from receiver import retention
from store import open_store
from tests.forwarding_support import Recorder, forwarding_running, video_event
from tests.support import SECRET, wait_for

FAST = Settings(imagekit_secrets=(SECRET,), lease_ttl=2.0, poll=0.01, reload=0.1, drain=5)


@pytest.fixture
def log(tmp_path):
    store = open_store(str(tmp_path / "log.db"), timeout=5.0)
    yield store
    store.close()


@pytest.fixture
def recorder():
    server = Recorder().start()
    yield server
    server.stop()


def add(store, url, **options):
    options.setdefault("retry_schedule", "20ms,20ms,20ms")
    options.setdefault("timeout", 0.5)
    return forwarding.add_destination(store, "app", url, start="start", **options)


def per_asset(ids: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for event_id in ids:
        groups.setdefault(event_id.split("-")[0], []).append(event_id)
    return groups


def test_destination_down_then_back_gets_everything_in_order_per_asset(log, tmp_path):
    server = Recorder()  # not listening yet: connections are refused
    add(log, server.url, retry_schedule="30ms,30ms,30ms,30ms,30ms,30ms,30ms,30ms,30ms,30ms")
    events = [video_event(f"a{n % 3}-{n:03d}", f"a{n % 3}") for n in range(30)]
    with forwarding_running(log, FAST):
        log.append_many(events[:15])
        wait_for(lambda: log.forwarding().attempts(limit=1), "a refused attempt")
        assert log.forwarding().attempts(limit=1)[0].error == "connection_refused"
        server.start()
        try:
            log.append_many(events[15:])
            wait_for(lambda: len(set(server.ids())) == 30, "all 30 events delivered")
        finally:
            server.stop()
    received = server.ids()
    assert sorted(received) == sorted(e.id for e in events)  # nothing lost, nothing twice
    expected = per_asset([e.id for e in events])
    assert per_asset(received) == expected  # log order within each asset
    assert forwarding.destination_status(log, "app")["delivered"] == 30


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        (("status", 500, {}), 500, None),
        (("status", 429, {"Retry-After": "1"}), 429, None),
        ("hang", None, "timeout"),
        ("close", None, "protocol_error"),
        ("redirect", 302, None),
        (("status", 404, {}), 404, None),
    ],
)
def test_each_fault_is_a_failed_attempt_of_its_class_then_retried(log, answer, status, error):
    server = Recorder(behave=lambda i, h, b: answer if i == 0 else ("status", 200, {}))
    server.start()
    try:
        add(log, server.url, timeout=0.3)
        log.append(video_event("x-1", "x"))
        with forwarding_running(log, FAST):
            wait_for(lambda: server.ids() == ["x-1"], "the retry delivered")
    finally:
        server.stop()
    first, second = sorted(log.forwarding().attempts(event_id="x-1"), key=lambda a: a.seq)
    assert (first.status, first.error, first.number) == (status, error, 1)
    assert (second.status, second.number) == (200, 2)
    assert first.next_ms is not None and second.next_ms is None
    if status == 429:  # Retry-After 1 s, clamped to twice the 20 ms step: far below 1 s
        # (next_ms is taken once the attempt is recorded, so the gap also holds that work)
        assert first.next_ms - (first.started_ms + first.duration_ms) < 500
    if status is not None:
        assert first.response == f"answer {status}".encode()
    assert [r.headers["ikledger-attempt"] for r in server.received] == ["1", "2"]


def test_always_failing_events_end_failed_while_others_flow_then_replay_failed(log):
    broken = {"bad"}
    server = Recorder(
        behave=lambda i, h, b: (
            ("status", 500, {})
            if json.loads(b)["data"]["asset"]["url"].endswith("bad.mp4") and broken
            else ("status", 200, {})
        )
    ).start()
    try:
        add(log, server.url)
        log.append_many([video_event("bad-1", "bad"), video_event("good-1", "good")])
        with forwarding_running(log, FAST):
            wait_for(lambda: forwarding.destination_status(log, "app")["failed"] == 1, "failed")
            log.append(video_event("good-2", "good"))
            wait_for(lambda: "good-2" in server.ids(), "others keep flowing")
            assert server.ids(status=500) == ["bad-1"] * 4  # 1 + 3 retries
            broken.clear()
            assert forwarding.replay(log, "app", failed=True, dry_run=True) == 1
            assert forwarding.replay(log, "app", failed=True) == 1
            wait_for(lambda: "bad-1" in server.ids(), "the replay delivered")
    finally:
        server.stop()
    replayed = [r for r in server.received if r.headers["webhook-id"] == "bad-1"][-1]
    assert replayed.headers["ikledger-attempt"] == "1" and "ikledger-replay" in replayed.headers
    status = forwarding.destination_status(log, "app")
    assert (status["failed"], status["delivered"], status["pending"]) == (0, 3, 0)


def test_replay_since_sends_exactly_the_events_received_at_or_after_it(log, recorder):
    log.append_many([video_event(f"old-{n}", f"o{n}") for n in range(3)])
    time.sleep(0.01)  # the later events are received a later millisecond
    log.append_many([video_event(f"new-{n}", f"n{n}") for n in range(3)])
    add(log, recorder.url)
    with forwarding_running(log, FAST):
        wait_for(lambda: log.forwarding().counts("app")["delivered"] == 6, "first delivery")
        since = log.get("new-0").received_at
        assert log.get("old-2").received_at < since
        assert forwarding.replay(log, "app", since=since) == 3
        wait_for(lambda: len(recorder.ids()) >= 9, "the replay")
        time.sleep(0.2)  # room for a wrong extra delivery to show
    assert sorted(recorder.ids()[6:]) == ["new-0", "new-1", "new-2"], recorder.ids()
    assert all("ikledger-replay" in r.headers for r in recorder.received[6:])


def test_pause_resume_and_remove_while_events_flow(log, recorder):
    add(log, recorder.url)
    with forwarding_running(log, FAST):
        log.append(video_event("p-1", "p"))
        wait_for(lambda: recorder.ids() == ["p-1"], "first event")
        forwarding.pause(log, "app")
        wait_for(lambda: log.forwarding().lease_holder("app") is None, "the forwarder stopped")
        log.append(video_event("p-2", "p"))
        time.sleep(0.3)
        assert recorder.ids() == ["p-1"]
        assert forwarding.destination_status(log, "app")["lag_events"] == 1
        forwarding.resume(log, "app")
        wait_for(lambda: recorder.ids() == ["p-1", "p-2"], "resumed")
        forwarding.remove(log, "app")
        wait_for(lambda: log.forwarding().lease_holder("app") is None, "removed")
        log.append(video_event("p-3", "p"))
        time.sleep(0.3)
    assert recorder.ids() == ["p-1", "p-2"]
    with pytest.raises(forwarding.ForwardingError, match="no destination"):
        forwarding.destination_status(log, "app")


def test_410_gone_pauses_the_destination_with_the_reason(log):
    server = Recorder(behave=lambda i, h, b: ("status", 410, {})).start()
    try:
        add(log, server.url)
        log.append(video_event("g-1", "g"))
        with forwarding_running(log, FAST):
            wait_for(lambda: forwarding.destination_status(log, "app")["paused"], "paused")
    finally:
        server.stop()
    status = forwarding.destination_status(log, "app")
    assert "410" in status["pause_reason"] and status["pending"] == 1


def test_event_erased_before_delivery_fails_as_body_pruned_without_a_post(log, recorder):
    add(log, recorder.url)
    log.append(video_event("e-1", "e"))
    log.append(video_event("e-2", "e"))
    retention.erase(log, "e-1", "personal data")
    with forwarding_running(log, FAST):
        wait_for(lambda: recorder.ids() == ["e-2"], "the event after it delivered")
    attempts = {a.event_id: a for a in log.forwarding().attempts(limit=10)}
    assert attempts["e-1"].error == "body_pruned" and attempts["e-1"].status is None
    assert recorder.ids() == ["e-2"]  # nothing, not even an empty body, for e-1
    status = forwarding.destination_status(log, "app")
    assert status["failed"] == 1 and status["delivered"] == 1


def test_many_interleaved_assets_at_eight_in_flight_arrive_in_order_per_asset(log, recorder):
    # Workers go on to the next due delivery themselves and the journal frees keys a
    # group at a time: neither may let a later event of an asset overtake an earlier.
    add(log, recorder.url, max_in_flight=8)
    events = [video_event(f"k{n % 12}-{n:03d}", f"k{n % 12}") for n in range(240)]
    with forwarding_running(log, FAST):
        log.append_many(events[:120])
        log.append_many(events[120:])
        wait_for(lambda: len(recorder.ids()) >= 240, "all 240 events delivered")
    received = recorder.ids()
    assert sorted(received) == sorted(e.id for e in events)
    assert per_asset(received) == per_asset([e.id for e in events])
