"""The forwarder's own state commits without waiting for the disk; a crash loses none of it.

The forwarder's bookkeeping (queued deliveries, attempts, outcomes) is committed with
`synchronous=NORMAL` on its own connections (`store.forwarding(durable=False)`): the
log's writer stays at FULL, and a power cut may undo the latest outcomes (sent again,
at least once). A SIGKILL of the forwarder is no power cut: every outcome it committed
is still there, and nothing it recorded is sent again.
"""

from __future__ import annotations

import signal

import pytest

import forwarding
from forwarding import Forwarder, Settings
from store import open_store
from tests.forwarding_support import Recorder, start_forwarder, stop_forwarder
from tests.integration.test_forwarding_delivery import video_event
from tests.support import SECRET, wait_for

FULL, NORMAL = 2, 1  # PRAGMA synchronous's answers


@pytest.fixture
def log(tmp_path):
    store = open_store(str(tmp_path / "log.db"), timeout=5.0)
    yield store
    store.close()


def synchronous(state) -> int:
    return state._read("PRAGMA synchronous")[0][0]


def test_only_the_forwarders_own_state_commits_without_syncing(log):
    assert synchronous(log.forwarding()) == FULL  # the CLI's, the API's
    assert synchronous(log.forwarding(durable=False)) == NORMAL
    forwarder = Forwarder(log, "app", client=None, settings=Settings())
    assert forwarder.state is log.forwarding(durable=False)


def test_outcomes_committed_before_a_sigkill_are_kept_and_not_sent_again(tmp_path):
    location = str(tmp_path / "log.db")
    server = Recorder().start()
    log = open_store(location, timeout=5.0)
    try:
        forwarding.add_destination(log, "app", server.url, start="start")
        log.append_many([video_event(f"e{n:03d}", f"a{n % 5}") for n in range(60)])
        process = start_forwarder(location, SECRET)
        try:
            state = log.forwarding()  # another connection: sees what was committed
            wait_for(lambda: state.counts("app")["delivered"] == 60, "every event delivered")
        finally:
            stop_forwarder(process, signal.SIGKILL)
        sent = len(server.ids(status=None))
    finally:
        log.close()
    log = open_store(location, timeout=5.0)  # after the kill, from the file alone
    try:
        state = log.forwarding()
        assert state.counts("app") == {"pending": 0, "delivered": 60, "failed": 0}
        assert len(state.attempts(destination="app", limit=1000)) == 60
        process = start_forwarder(location, SECRET)
        try:
            log.append_many([video_event("last", "a0")])
            wait_for(lambda: state.counts("app")["delivered"] == 61, "the next event delivered")
        finally:
            stop_forwarder(process)
        assert len(server.ids(status=None)) == sent + 1  # only the new event
    finally:
        log.close()
        server.stop()
