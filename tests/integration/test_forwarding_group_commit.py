"""Attempts are journalled in group commits (`forwarding/journal.py`), gathered while
the log grows.

The first test: a forwarder over a real SQLite log whose HTTP client is a fake whose
eight posts all return at once, and whose forwarding state is a wrapper that counts
transactions recording attempts and holds the first one back until all eight returned.
"""

from __future__ import annotations

import threading
import time

import pytest

from forwarding import Answer, Forwarder, Settings
from forwarding.journal import AttemptJournal
from store import NewEvent, open_store
from store.forwarding import DELIVERED, Destination
from tests.support import SECRET, event_body, wait_for

IN_FLIGHT = 8


class TogetherClient:
    """Answers 200 to each post once IN_FLIGHT posts are in flight together."""

    def __init__(self):
        self.together = threading.Barrier(IN_FLIGHT)
        self.returned = threading.Semaphore(0)

    def post(self, url, body, headers, timeout):
        self.together.wait(10)
        self.returned.release()
        return Answer(200, {}, b"ok")


class CountingState:
    """The real forwarding state; counts the transactions that record attempts."""

    def __init__(self, state, client: TogetherClient):
        self._state = state
        self._client = client
        self.transactions: list[int] = []  # attempts recorded by each
        self._first = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._state, name)

    def _hold_first(self):
        if self._first.acquire(blocking=False):  # the first commit waits for every post
            for _ in range(IN_FLIGHT):
                assert self._client.returned.acquire(timeout=10)
            threading.Event().wait(0.2)  # the others reach the journal meanwhile

    def record_attempt(self, attempt, state):
        self._hold_first()
        self.transactions.append(1)
        return self._state.record_attempt(attempt, state)

    def record_attempts(self, outcomes):
        self._hold_first()
        self.transactions.append(len(outcomes))
        return self._state.record_attempts(outcomes)


class CountingStore:
    def __init__(self, store, state):
        self._store = store
        self._state = state

    def __getattr__(self, name):
        return getattr(self._store, name)

    def forwarding(self, **options):
        return self._state


@pytest.fixture
def log(tmp_path):
    store = open_store(str(tmp_path / "log.db"), timeout=5.0)
    yield store
    store.close()


def test_attempts_finishing_together_share_one_commit(log):
    log.append_many(
        [
            NewEvent(f"e{n}", "video.transformation.accepted", "2024-01-01T00:00:00.000Z",
                     event_body(f"e{n}"), "standard-webhooks")
            for n in range(IN_FLIGHT)
        ]
    )  # fmt: skip
    state = log.forwarding()
    state.add_destination(
        Destination("app", "http://127.0.0.1:9/hook", max_in_flight=IN_FLIGHT, unordered=True)
    )
    client = TogetherClient()
    counting = CountingState(state, client)
    settings = Settings(imagekit_secrets=(SECRET,), lease_ttl=2.0, poll=0.01, reload=0.1)
    forwarder = Forwarder(CountingStore(log, counting), "app", client=client, settings=settings)
    stop = threading.Event()
    thread = threading.Thread(target=forwarder.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: state.counts("app")[DELIVERED] == IN_FLIGHT, "all eight delivered")
    finally:
        stop.set()
        thread.join(20)
    assert sum(counting.transactions) == IN_FLIGHT
    assert len(counting.transactions) < IN_FLIGHT, counting.transactions
    assert len(state.attempts(destination="app")) == IN_FLIGHT


class FailsOnce:
    """A forwarding state whose first group commit fails."""

    def __init__(self):
        self.calls = 0

    def record_attempts(self, outcomes):
        self.calls += 1
        if self.calls == 1:
            raise OSError("disk gone")
        return [True] * len(outcomes)


def test_a_failed_group_commit_reaches_its_callers_and_the_next_group_commits():
    journal = AttemptJournal(FailsOnce())
    outcomes = []
    try:
        journal.submit(None, DELIVERED, lambda ok, error: outcomes.append((ok, repr(error))))
        wait_for(lambda: outcomes, "the first group")
        journal.submit(None, DELIVERED, lambda ok, error: outcomes.append((ok, repr(error))))
    finally:
        journal.close()  # commits what is queued first
    assert outcomes == [(False, "OSError('disk gone')"), (True, "None")]


class Holding:
    """A forwarding state whose commits wait until `release` is set."""

    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()

    def record_attempts(self, outcomes):
        self.entered.set()
        assert self.release.wait(10)
        return [True] * len(outcomes)


def test_after_runs_once_per_group_once_its_callbacks_ran():
    state = Holding()
    seen = []
    journal = AttemptJournal(state, after=lambda: seen.append("after"))
    try:
        journal.submit(None, DELIVERED, lambda ok, error: seen.append("done"))
        assert state.entered.wait(10)  # the first group is committing: the next two queue
        journal.submit(None, DELIVERED, lambda ok, error: seen.append("done"))
        journal.submit(None, DELIVERED, lambda ok, error: seen.append("done"))
        state.release.set()
    finally:
        journal.close()
    assert seen == ["done", "after", "done", "done", "after"]


class NotingStarts:
    """A forwarding state that notes when each group commit starts."""

    def __init__(self):
        self.starts: list[float] = []

    def record_attempts(self, outcomes):
        self.starts.append(time.monotonic())
        return [True] * len(outcomes)


def test_while_gathering_commits_start_at_least_gather_apart():
    state = NotingStarts()
    journal = AttemptJournal(state, gather=0.2)
    done = []
    try:
        journal.submit(None, DELIVERED, lambda ok, error: done.append(ok))
        wait_for(lambda: done, "the first group")
        journal.submit(None, DELIVERED, lambda ok, error: done.append(ok))
        wait_for(lambda: len(done) == 2, "the second group")
    finally:
        journal.close()
    assert state.starts[1] - state.starts[0] >= 0.2


class Ok:
    def post(self, url, body, headers, timeout):
        return Answer(200, {}, b"ok")


def test_the_journal_gathers_only_while_the_log_grows(log):
    def append(numbers):
        log.append_many(
            [
                NewEvent(f"e{n}", "video.transformation.accepted", "2024-01-01T00:00:00.000Z",
                         event_body(f"e{n}"), "standard-webhooks")
                for n in numbers
            ]
        )  # fmt: skip

    append(range(4))
    state = log.forwarding()
    state.add_destination(Destination("app", "http://127.0.0.1:9/hook", unordered=True))
    settings = Settings(imagekit_secrets=(SECRET,), lease_ttl=2.0, poll=0.01, gather=0.3)
    forwarder = Forwarder(log, "app", client=Ok(), settings=settings)
    stop = threading.Event()
    thread = threading.Thread(target=forwarder.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: state.counts("app")[DELIVERED] == 4, "the backlog delivered")
        assert forwarder.journal.gather == 0.0  # a backlog alone: commits go at once
        append(range(4, 8))
        wait_for(lambda: forwarder.journal.gather == 0.3, "gathering while the log grows")
        wait_for(lambda: state.counts("app")[DELIVERED] == 8, "the new events delivered")
        wait_for(lambda: forwarder.journal.gather == 0.0, "no gathering once it stops")
    finally:
        stop.set()
        thread.join(20)
