"""One stuck asset holds back only itself, even with more pending deliveries than the window.

The forwarder keeps a window of `Settings.window` pending deliveries in memory. An
asset whose app keeps failing, with more pending deliveries than that, must not fill
the window and stop every other asset (head-of-line blocking across keys): the other
assets are delivered while it fails, and its own order holds when it recovers. Real
SQLite log, real HTTP endpoint on loopback, the supervisor in a thread.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

import forwarding
from forwarding import Settings
from store import open_store
from tests.forwarding_support import Recorder, forwarding_running, video_event
from tests.support import SECRET, wait_for

WINDOW = 5
SMALL = Settings(
    imagekit_secrets=(SECRET,), lease_ttl=2.0, poll=0.01, reload=0.1, drain=5, window=WINDOW
)


@pytest.fixture
def log(tmp_path):
    store = open_store(str(tmp_path / "log.db"), timeout=5.0)
    yield store
    store.close()


def add_retrying(log, url: str) -> None:
    """Destination "app" from the log's start, retrying every 50 ms long enough to keep
    failing through a test."""
    forwarding.add_destination(
        log, "app", url, start="start", timeout=0.5, retry_schedule=",".join(["50ms"] * 400)
    )


def asset_of(body: bytes) -> str:
    return json.loads(body)["data"]["asset"]["url"].rsplit("/", 1)[1].removesuffix(".mp4")


def test_a_failing_asset_past_the_window_does_not_hold_back_the_others(log):
    failing = {"a"}
    server = Recorder(
        behave=lambda i, h, b: (
            ("status", 500, {}) if asset_of(b) in failing else ("status", 200, {})
        )
    ).start()
    # Asset a: three windows' worth of events, all before b's.
    stuck = [video_event(f"a-{n:02d}", "a") for n in range(3 * WINDOW)]
    early = [video_event(f"b-{n:02d}", "b") for n in range(3)]
    late = [video_event(f"b-{n:02d}", "b") for n in range(3, 6)]
    try:
        add_retrying(log, server.url)
        log.append_many(stuck + early)
        with forwarding_running(log, SMALL):
            wait_for(lambda: len(server.ids(status=500)) >= 3, "a's head failed a few times")
            wait_for(lambda: server.ids() == [e.id for e in early], "b's backlog delivered")
            log.append_many(late)  # queued while a still fails
            wait_for(
                lambda: server.ids() == [e.id for e in early + late], "b's new events delivered"
            )
            assert set(server.ids(status=500)) == {"a-00"}  # only a's head was attempted
            failing.clear()  # a's app recovers
            wait_for(lambda: len(server.ids()) == len(stuck + early + late), "a delivered")
    finally:
        server.stop()
    received = server.ids()
    assert [i for i in received if i.startswith("a-")] == [e.id for e in stuck]  # a's order
    assert [i for i in received if i.startswith("b-")] == [e.id for e in early + late]
    assert forwarding.destination_status(log, "app")["delivered"] == len(stuck + early + late)


def test_an_asset_with_a_backlog_past_its_share_flows_beside_a_failing_one(log):
    # No periodic re-read within the test: b's deliveries beyond what the window holds
    # must come in as the window drains while a's head keeps failing.
    rare_reads = dataclasses.replace(SMALL, reload=60.0)
    server = Recorder(
        behave=lambda i, h, b: ("status", 500, {}) if asset_of(b) == "a" else ("status", 200, {})
    ).start()
    stuck = [video_event(f"a-{n:02d}", "a") for n in range(3 * WINDOW)]
    backlog = [video_event(f"b-{n:02d}", "b") for n in range(4 * WINDOW)]
    try:
        add_retrying(log, server.url)
        log.append_many(stuck + backlog)
        with forwarding_running(log, rare_reads):
            wait_for(lambda: len(server.ids()) == len(backlog), "b's backlog delivered")
    finally:
        server.stop()
    assert server.ids() == [e.id for e in backlog]  # in order, once each
    assert set(server.ids(status=500)) == {"a-00"}


class Unused:
    def post(self, url, body, headers, timeout):
        raise AssertionError("nothing is attempted here")


def test_a_new_event_never_joins_the_window_ahead_of_its_keys_older_pending_one(log):
    # The window full of asset x leaves a-0 outside it; once x-0 leaves, a-1 (newer)
    # must not take a-0's turn in memory: a-0 is still pending in the database.
    forwarding.add_destination(log, "app", "http://127.0.0.1:9/hook", start="start")
    forwarder = forwarding.Forwarder(log, "app", client=Unused(), settings=SMALL)
    destination = log.forwarding().destination("app")
    forwarder._reload(destination)  # nothing pending yet
    log.append_many([video_event(f"x-{n}", "x") for n in range(WINDOW)] + [video_event("a-0", "a")])
    forwarder._ingest(destination)
    first_x = forwarder._window[min(forwarder._window)]
    forwarder._finish(first_x, None)  # x-0 delivered: room in the window
    log.append(video_event("a-1", "a"))
    forwarder._ingest(destination)
    with forwarder._lock:
        started = forwarder._plan(destination, WINDOW).start
    assert "a-1" not in [item.event_id for item in started]
