"""A forwarder SIGKILLed mid-delivery: after restart everything is delivered, and only the
attempts in flight at the kill are sent twice (at least once, nothing else twice)."""

from __future__ import annotations

import signal
import threading
from collections import Counter

import forwarding
from store import open_store
from tests.forwarding_support import Recorder, start_forwarder, stop_forwarder
from tests.integration.test_forwarding_delivery import video_event
from tests.support import SECRET, wait_for


def test_forwarder_killed_mid_delivery_resends_only_what_was_in_flight(tmp_path):
    location = str(tmp_path / "log.db")
    hanging = {"h0-000", "h1-001"}  # answered only after the kill
    first_run = threading.Event()
    first_run.set()

    def behave(index, headers, body):
        if first_run.is_set() and headers["webhook-id"] in hanging:
            return "hang"
        return ("status", 200, {})

    server = Recorder(behave=behave).start()
    log = open_store(location, timeout=5.0)
    try:
        forwarding.add_destination(
            log, "app", server.url, start="start", timeout=20, retry_schedule="50ms,50ms"
        )
        events = [video_event(f"h{n}-{n:03d}", f"h{n}") for n in range(2)]
        events += [video_event(f"s{n % 4}-{n:03d}", f"s{n % 4}") for n in range(2, 40)]
        log.append_many(events)
        process = start_forwarder(location, SECRET)
        try:
            state = log.forwarding()
            wait_for(lambda: state.counts("app")["delivered"] == 38, "the others delivered")
            wait_for(lambda: set(server.ids(status=None)) >= hanging, "the hung attempts")
        finally:
            stop_forwarder(process, signal.SIGKILL)
        first_run.clear()
        server.release.set()  # the hung handlers end; their answers go nowhere
        process = start_forwarder(location, SECRET)
        try:
            wait_for(lambda: log.forwarding().counts("app")["delivered"] == 40, "all delivered")
        finally:
            stop_forwarder(process)
    finally:
        log.close()
        server.stop()
    sent = Counter(server.ids(status=None))
    assert set(sent) == {e.id for e in events}  # nothing lost
    assert {event_id for event_id, times in sent.items() if times > 1} == hanging
    assert all(times <= 2 for times in sent.values())
