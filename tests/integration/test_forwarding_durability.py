"""The forwarder's own state commits without waiting for the disk; a crash loses none of it.

The forwarder's bookkeeping (queued deliveries, attempts, outcomes) is committed with
`synchronous=NORMAL` on its own connections (`store.forwarding(durable=False)`): the
log's writer stays at FULL, and a power cut may undo the latest outcomes (sent again,
at least once). A SIGKILL of the forwarder is no power cut: every outcome it committed
is still there, and nothing it recorded is sent again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

import forwarding
from forwarding import Forwarder, Settings
from store import open_store
from store.forwarding import Queued
from tests.forwarding_support import ROOT, Recorder, start_forwarder, stop_forwarder
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


# A child that journals two groups of attempts as the forwarder's journal does, and is
# SIGKILLed inside the second group's transaction: after its states are set, before its
# attempts are written.
KILLED_MID_GROUP = """
import os, signal, sys
from contextlib import contextmanager
from store import open_store
from store.forwarding import DELIVERED, Attempt

log = open_store(sys.argv[1], timeout=5.0)
state = log.forwarding(durable=False)
ids = {item.position: item.event_id for item in state.pending("app")}

def attempt(position):
    return Attempt("app", position, ids[position], 1, "scheduled", None, 1000, 3, 200,
                   None, b"ok", None)

state.record_attempts([(attempt(p), DELIVERED) for p in (1, 2, 3)])
inner = state._transaction

class KillBeforeTheJournal:
    def __init__(self, run):
        self.run = run
    def __call__(self, sql, params=()):
        return self.run(sql, params)
    def many(self, sql, rows):
        if "fwd_attempts" in sql:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.run.many(sql, rows)

@contextmanager
def killing(*, write=True):
    with inner(write=write) as run:
        yield KillBeforeTheJournal(run)

state._transaction = killing
state.record_attempts([(attempt(p), DELIVERED) for p in (4, 5, 6)])
"""


class Posts:
    """A client that answers 200 to every POST and notes the event ids sent."""

    def __init__(self):
        self.ids: list[str] = []

    def post(self, url, body, headers, timeout):
        self.ids.append(headers["webhook-id"])
        return forwarding.Answer(200, {}, b"ok")


def test_a_sigkill_inside_a_group_commit_keeps_none_of_it_and_sends_only_it_again(tmp_path):
    location = str(tmp_path / "log.db")
    log = open_store(location, timeout=5.0)
    try:
        forwarding.add_destination(log, "app", "http://127.0.0.1:9/hook", start="start")
        events = [video_event(f"e{n}", f"a{n % 2}") for n in range(1, 7)]
        log.append_many(events)
        state = log.forwarding()
        state.enqueue("app", [Queued(n, f"e{n}", "k") for n in range(1, 7)],
                      due_ms=0, cursor=6)  # fmt: skip
        child = subprocess.run(
            [sys.executable, "-c", KILLED_MID_GROUP, location],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr.decode()
        assert state.counts("app") == {"pending": 3, "delivered": 3, "failed": 0}
        assert sorted(a.event_id for a in state.attempts(destination="app")) == ["e1", "e2", "e3"]
        posts = Posts()
        forwarder = Forwarder(
            log, "app", client=posts, settings=Settings(imagekit_secrets=(SECRET,))
        )
        stop = threading.Event()
        thread = threading.Thread(target=forwarder.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_for(lambda: state.counts("app")["delivered"] == 6, "the rest delivered")
        finally:
            stop.set()
            thread.join(20)
        assert sorted(posts.ids) == ["e4", "e5", "e6"]  # the group the kill cut, only it
    finally:
        log.close()
