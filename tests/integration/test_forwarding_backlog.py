"""A backlog past the pending window: attempts start before all of it is queued."""

from __future__ import annotations

import threading

import pytest

from forwarding import Answer, Forwarder, Settings
from store import NewEvent, open_store
from store.forwarding import DELIVERED, Destination
from tests.support import SECRET, event_body, wait_for

EVENTS = 100


class NotingClient:
    """Answers 200; notes the destination's cursor when the first post arrives."""

    def __init__(self, state):
        self.state = state
        self.cursor_at_first_post: int | None = None
        self.lock = threading.Lock()

    def post(self, url, body, headers, timeout):
        with self.lock:
            if self.cursor_at_first_post is None:
                self.cursor_at_first_post = self.state.destination("app").cursor
        return Answer(200, {}, b"ok")


@pytest.fixture
def log(tmp_path):
    store = open_store(str(tmp_path / "log.db"), timeout=5.0)
    yield store
    store.close()


def test_a_backlog_is_queued_a_batch_per_turn_while_attempts_start(log):
    log.append_many(
        [
            NewEvent(f"e{n}", "video.transformation.accepted", "2024-01-01T00:00:00.000Z",
                     event_body(f"e{n}"), "standard-webhooks")
            for n in range(EVENTS)
        ]
    )  # fmt: skip
    state = log.forwarding()
    state.add_destination(Destination("app", "http://127.0.0.1:9/hook", unordered=True))
    client = NotingClient(state)
    settings = Settings(
        imagekit_secrets=(SECRET,), lease_ttl=2.0, poll=0.01, reload=0.1, window=10, batch=5
    )
    forwarder = Forwarder(log, "app", client=client, settings=settings)
    stop = threading.Event()
    thread = threading.Thread(target=forwarder.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: state.counts("app")[DELIVERED] == EVENTS, "every event delivered")
    finally:
        stop.set()
        thread.join(20)
    # The window (10) filled after three batches of 5: the first attempt went out then,
    # not after all 100 events were queued.
    assert client.cursor_at_first_post is not None
    assert client.cursor_at_first_post < EVENTS
    assert len(state.attempts(destination="app")) == EVENTS  # nothing lost, nothing twice
