"""The backend-neutral group writer: grouping, timeouts, a dead thread, a bounded close.

Each test injects a `commit` that fails in one way and names that failure. Waits on
threads are bounded (`join(timeout)`), so a writer that hangs fails the test instead
of hanging the suite.
"""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

from store import AppendResult, NewEvent, Outcome, Rejection
from store.contract import StoreClosed, StoreError, StoreUnavailable
from store.writer import MAX_GROUP, GroupWriter

BOUND = 10.0  # seconds a helper thread may take before the test calls it a hang


def event(event_id: str) -> NewEvent:
    return NewEvent(event_id, "file.created", "2024-01-01T00:00:00.000Z", b"{}", "x-ik-signature")


class Recorder:
    """A commit that stores every event it is given, at positions 1, 2, 3, ..."""

    def __init__(self):
        self.groups: list[tuple[list[NewEvent], list, bool]] = []
        self.position = 0

    def __call__(self, events, rejections, probe):
        self.groups.append((list(events), list(rejections), probe))
        results = []
        for item in events:
            self.position += 1
            results.append(AppendResult(Outcome.STORED, item.id, self.position))
        return results

    def ids(self) -> list[str]:
        return [e.id for events, _, _ in self.groups for e in events]


class Blocking(Recorder):
    """A commit that blocks until released (a lock held by someone else, a stuck disk)."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, events, rejections, probe):
        self.entered.set()
        assert self.release.wait(BOUND), "never released"
        return super().__call__(events, rejections, probe)


class WriterKilled(BaseException):
    """Escapes `except Exception`, as a thread death does."""


def in_thread(target, *args):
    """Run `target` in a thread; returns (thread, outcome dict with 'result' or 'error')."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = target(*args)
        except BaseException as exc:  # noqa: BLE001 -- the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def wait_until(condition) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


@pytest.fixture
def closing():
    opened: list[GroupWriter] = []

    def make(commit, timeout: float = 5.0) -> GroupWriter:
        writer = GroupWriter(commit, timeout=timeout, name=f"test-writer-{id(commit)}")
        opened.append(writer)
        return writer

    yield make
    for writer in opened:
        writer.close()


def test_commit_that_blocks_makes_the_append_raise_store_unavailable_within_timeout(closing):
    commit = Blocking()
    writer = closing(commit, timeout=0.3)
    thread, outcome = in_thread(writer.append_many, [event("e1")])
    thread.join(BOUND)
    assert not thread.is_alive(), "the append hung past its timeout"
    assert isinstance(outcome.get("error"), StoreUnavailable)
    assert "outcome is unknown" in str(outcome["error"])
    commit.release.set()


def test_append_queued_behind_a_blocked_commit_is_withdrawn_and_never_committed(closing):
    commit = Blocking()
    writer = closing(commit, timeout=0.5)
    first, _ = in_thread(writer.append_many, [event("first")])
    assert commit.entered.wait(BOUND)
    with pytest.raises(StoreUnavailable, match="nothing was stored"):
        writer.append_many([event("queued")])
    commit.release.set()
    first.join(BOUND)
    assert writer.append_many([event("later")])[0].outcome is Outcome.STORED
    assert commit.ids() == ["first", "later"]


class DiesOnce(Blocking):
    """Blocks its first group until released, then raises past `except Exception`."""

    died = False

    def __call__(self, events, rejections, probe):
        if self.died:
            return Recorder.__call__(self, events, rejections, probe)
        self.died = True
        self.entered.set()
        assert self.release.wait(BOUND), "never released"
        raise WriterKilled("injected")


def test_commit_raising_base_exception_releases_waiters_and_writer_is_replaced(closing):
    commit = DiesOnce()
    writer = closing(commit, timeout=30.0)  # only the death may release the waiters
    first = in_thread(writer.append_many, [event("in-flight")])
    assert commit.entered.wait(BOUND)
    queued = [in_thread(writer.append_many, [event(f"queued-{n}")]) for n in range(3)]
    wait_until(lambda: writer.queued == 3)
    commit.release.set()
    for thread, outcome in [first, *queued]:
        thread.join(BOUND)
        assert not thread.is_alive(), "a waiter hung on a dead writer"
        assert isinstance(outcome.get("error"), StoreUnavailable)
        assert "died" in str(outcome["error"])
    assert "WriterKilled" in (writer.check_writable() or "")
    assert writer.append_many([event("after")])[0].outcome is Outcome.STORED
    assert writer.restarts == 1
    assert writer.check_writable(max_age=0) is None  # a probe through the fresh thread


def test_writer_thread_killed_while_idle_is_detected_and_replaced(closing):
    commit = Recorder()
    writer = closing(commit)
    writer.append_many([event("before")])
    (thread,) = [t for t in threading.enumerate() if t.name == writer.name]
    # Raise in the writer thread from outside: it dies as soon as it runs again.
    hit = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(WriterKilled)
    )
    assert hit == 1
    with pytest.raises(StoreUnavailable, match="died"):
        writer.append_many([event("wakes-the-dying-thread")])
    thread.join(BOUND)
    assert not thread.is_alive()
    assert "WriterKilled" in (writer.check_writable() or "")
    assert writer.append_many([event("after")])[0].outcome is Outcome.STORED
    assert "after" in commit.ids()


def test_commit_raising_an_unexpected_error_answers_store_error_and_keeps_the_thread(closing):
    calls = {"n": 0}
    recorder = Recorder()

    def buggy(events, rejections, probe):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("a bug in the backend")
        return recorder(events, rejections, probe)

    writer = closing(buggy)
    with pytest.raises(StoreError, match="internal store error") as raised:
        writer.append_many([event("e1")])
    assert not isinstance(raised.value, StoreUnavailable)  # a bug is not transient
    assert writer.append_many([event("e2")])[0].position == 1
    assert writer.restarts == 0


def test_commit_failing_with_store_unavailable_is_reported_until_a_probe_succeeds(closing):
    calls = {"n": 0}
    recorder = Recorder()

    def full_disk(events, rejections, probe):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise StoreUnavailable("database or disk is full (SQLITE_FULL)")
        return recorder(events, rejections, probe)

    writer = closing(full_disk)
    assert "SQLITE_FULL" in writer.check_writable()  # the first call probes
    with pytest.raises(StoreUnavailable, match="SQLITE_FULL"):
        writer.append_many([event("e1")])
    assert writer.check_writable(max_age=0) is None
    assert recorder.groups[-1] == ([], [], True)


def test_close_with_a_stuck_commit_returns_and_releases_every_caller(closing):
    commit = Blocking()
    writer = GroupWriter(commit, timeout=0.3, name="stuck-writer")
    in_flight, in_flight_outcome = in_thread(writer.append_many, [event("stuck")])
    assert commit.entered.wait(BOUND)
    closer, closed = in_thread(writer.close)
    closer.join(BOUND)
    assert not closer.is_alive(), "close() hung on a stuck commit"
    assert closed["result"] is False
    in_flight.join(BOUND)
    assert isinstance(in_flight_outcome.get("error"), StoreUnavailable)
    with pytest.raises(StoreClosed):
        writer.append_many([event("after-close")])
    commit.release.set()


def test_results_return_to_their_callers_in_order(closing):
    commit = Recorder()
    writer = closing(commit)
    answers: dict[str, list[str]] = {}

    def caller(prefix: str) -> None:
        for n in range(40):
            batch = [event(f"{prefix}-{n}-{k}") for k in range(1 + n % 3)]
            answers.setdefault(prefix, []).extend(r.id for r in writer.append_many(batch))

    threads = [threading.Thread(target=caller, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)
    assert sorted(answers) == [f"t{n}" for n in range(8)]
    for prefix, ids in answers.items():
        assert ids == [f"{prefix}-{n}-{k}" for n in range(40) for k in range(1 + n % 3)]


def test_a_queue_longer_than_max_group_is_committed_in_bounded_groups(closing):
    # Three callers of half a group each queue behind a blocked commit: the next group
    # takes two of them (MAX_GROUP events), the third waits for the group after.
    commit = Blocking()
    writer = closing(commit, timeout=BOUND)
    first, _ = in_thread(writer.append_many, [event("first")])
    assert commit.entered.wait(BOUND)
    half = MAX_GROUP // 2
    queued = [
        in_thread(writer.append_many, [event(f"q{n}-{k}") for k in range(half)]) for n in range(3)
    ]
    wait_until(lambda: writer.queued == 3)
    commit.release.set()
    for thread, outcome in [(first, None), *queued]:
        thread.join(BOUND)
        assert not thread.is_alive()
    assert [len(events) for events, _, _ in commit.groups] == [1, MAX_GROUP, half]


def test_one_batch_larger_than_max_group_is_committed_whole(closing):
    # A caller's batch is one transaction even past MAX_GROUP: it is never split.
    commit = Recorder()
    writer = closing(commit)
    big = [event(f"big-{n}") for n in range(MAX_GROUP + 10)]
    assert [r.position for r in writer.append_many(big)] == list(range(1, MAX_GROUP + 11))
    assert [len(events) for events, _, _ in commit.groups] == [MAX_GROUP + 10]


def test_refusals_are_committed_with_the_next_group_with_their_time(closing):
    commit = Recorder()
    writer = closing(commit)
    refusal = Rejection(reason="bad signature", status=401, event_id="e1")
    writer.record_rejection(refusal)
    writer.append_many([event("e1")])
    rejections = [r for _, rs, _ in commit.groups for r in rs]
    assert [r for _, r in rejections] == [refusal]
    assert all(isinstance(at, int) and at > 1_600_000_000_000 for at, _ in rejections)


# -- lingering for a fuller group ----------------------------------------------------


def test_a_lone_sequential_caller_commits_one_group_per_append_and_never_lingers(closing):
    commit = Recorder()
    writer = GroupWriter(commit, timeout=5.0, name="lone-writer", linger=0.05, linger_group=12)
    try:
        for n in range(20):
            assert writer.append_many([event(f"e{n}")])[0].position == n + 1
        writer.check_writable()  # a probe is a caller too, alone as well
    finally:
        writer.close()
    assert writer.lingered == 0
    assert writer.groups == len(commit.groups) == 21
    assert [len(events) for events, _, _ in commit.groups[:20]] == [1] * 20


def test_a_caller_queued_while_another_commits_waits_for_its_next_append(closing):
    # A commits (blocked); B queues meanwhile, so two callers were in flight. Once A
    # is answered, the writer holds B until A's next append arrives (the linger is
    # long here so that the grouping does not depend on timing), then commits both.
    commit = Blocking()
    writer = GroupWriter(commit, timeout=BOUND, name="linger-writer", linger=BOUND / 2)
    try:
        first, first_outcome = in_thread(writer.append_many, [event("a1")])
        assert commit.entered.wait(BOUND)
        second, second_outcome = in_thread(writer.append_many, [event("b1")])
        wait_until(lambda: writer.queued == 1)
        commit.release.set()
        first.join(BOUND)
        assert first_outcome["result"][0].position == 1
        wait_until(lambda: writer.lingered == 1)  # holding b1, not committing it
        assert writer.append_many([event("a2")])[0].outcome is Outcome.STORED
        second.join(BOUND)
        assert second_outcome["result"][0].outcome is Outcome.STORED
    finally:
        writer.close()
    assert [[e.id for e in events] for events, _, _ in commit.groups] == [["a1"], ["b1", "a2"]]


def test_a_queue_already_holding_enough_is_committed_without_lingering(closing):
    commit = Blocking()
    writer = GroupWriter(commit, timeout=BOUND, name="full-writer", linger=BOUND, linger_group=3)
    try:
        first, _ = in_thread(writer.append_many, [event("first")])
        assert commit.entered.wait(BOUND)
        queued = [in_thread(writer.append_many, [event(f"q{n}")]) for n in range(3)]
        wait_until(lambda: writer.queued == 3)
        commit.release.set()
        for thread, outcome in [(first, None), *queued]:
            thread.join(BOUND)
            assert not thread.is_alive(), "the writer lingered with a full queue"
    finally:
        writer.close()
    assert writer.lingered == 0
    assert sorted(len(events) for events, _, _ in commit.groups) == [1, 3]


def test_appends_queued_during_a_commit_are_committed_together_in_the_next_group(closing):
    # 16 callers queue while one commit is in progress (as they do behind an fsync):
    # the next group takes them all, so 17 appends cost two commits.
    commit = Blocking()
    writer = closing(commit, timeout=BOUND)
    first, _ = in_thread(writer.append_many, [event("first")])
    assert commit.entered.wait(BOUND)
    queued = [in_thread(writer.append_many, [event(f"q{n}")]) for n in range(16)]
    wait_until(lambda: writer.queued == 16)
    commit.release.set()
    for thread, outcome in [(first, None), *queued]:
        thread.join(BOUND)
        assert not thread.is_alive()
    assert [len(events) for events, _, _ in commit.groups] == [1, 16]
    assert writer.groups == 2


def test_the_group_is_taken_once_the_writer_has_its_turn(closing):
    """Appends queued while another process holds the writers' turn join the next group."""
    held = threading.Lock()
    held.acquire()  # another process's writer is committing
    entered = threading.Event()

    class Turn:
        def __enter__(self):
            entered.set()
            assert held.acquire(timeout=BOUND), "the turn never came"

        def __exit__(self, *exc):
            held.release()

    recorder = Recorder()
    writer = GroupWriter(recorder, timeout=5.0, name="test-writer-turn", turn=Turn)
    try:
        first = in_thread(writer.append_many, [event("a")])
        assert entered.wait(BOUND)  # the writer waits for its turn with "a" queued
        later = [in_thread(writer.append_many, [event(name)]) for name in ("b", "c")]
        wait_until(lambda: writer.queued == 3)
        held.release()  # the other writer's commit is done
        for thread, outcome in (first, *later):
            thread.join(BOUND)
            assert "result" in outcome, outcome
        assert [[e.id for e in events] for events, _, _ in recorder.groups] == [["a", "b", "c"]]
    finally:
        writer.close()


def test_the_closing_statistics_line_counts_events_and_commits_that_carry_them(caplog):
    """Probes, refusal-only commits and multi-event appends cannot make the line lie.

    Seen: "106 appends in 108 groups" (probes and journal-only commits were counted as
    groups, callers as appends).
    """
    recorder = Recorder()
    writer = GroupWriter(recorder, timeout=5.0, name="stats-writer")
    try:
        writer.append_many([event("a1"), event("a2"), event("a3")])  # one caller, 3 events
        writer.append_many([event("b1")])
        assert writer.check_writable() is None  # a probe: a commit without events
        writer.record_rejection(Rejection(reason="signature_invalid", status=401))
        wait_until(lambda: len(recorder.groups) == 4)  # the refusal commits alone
    finally:
        with caplog.at_level("INFO", logger="ikledger.store"):
            writer.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stats-writer")]
    assert lines == [
        "stats-writer: 4 events in 2 commits (2 more commits without events; 0 after lingering)"
    ]


def _threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_the_writer_thread_starts_with_the_first_write_only():
    # A store opened only to read (`ikledger timeline`) must not start and join a thread.
    recorder = Recorder()
    idle = GroupWriter(recorder, timeout=BOUND, name="ikledger-writer-idle")
    assert _threads_named("ikledger-writer-idle") == []
    assert idle.close() is True
    assert idle.close() is True  # idempotent, still without a thread
    with pytest.raises(StoreClosed):
        idle.append_many([event("late")])

    busy = GroupWriter(recorder, timeout=BOUND, name="ikledger-writer-busy")
    try:
        assert [r.position for r in busy.append_many([event("e1")])] == [1]
        assert len(_threads_named("ikledger-writer-busy")) == 1
    finally:
        assert busy.close() is True
    assert recorder.ids() == ["e1"]
