"""The forwarding state's contract (`store/forwarding.py`), one suite over every backend."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from store.forwarding import (
    DELIVERED,
    FAILED,
    PENDING,
    Attempt,
    Destination,
    DestinationExists,
    Queued,
    UnknownDestination,
)
from tests import backends

make_store = backends.make_store
store = backends.store

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def destination(name="app", **changes) -> Destination:
    return Destination(
        name, "http://user:pw@127.0.0.1:9/hook", SECRET, schedule_ms=(5, 10), **changes
    )


def attempt(position, number=1, status=200, next_ms=None, event_id=None) -> Attempt:
    return Attempt(
        "app", position, event_id or f"e{position}", number, "scheduled", None,
        1000 + number, 3, status, None, b"ok", next_ms,
    )  # fmt: skip


def test_destination_round_trips_and_its_repr_hides_secret_and_credentials(store):
    state = store.forwarding()
    state.add_destination(destination(types=("video.*",), rate=2.5, unordered=True))
    got = state.destination("app")
    assert got == destination(types=("video.*",), rate=2.5, unordered=True)
    assert SECRET not in repr(got) and "pw" not in repr(got)
    assert got.display_url == "http://127.0.0.1:9/hook"
    with pytest.raises(DestinationExists):
        state.add_destination(destination())
    assert [d.name for d in state.destinations()] == ["app"]


def test_unknown_destination_is_an_error_for_every_change(store):
    state = store.forwarding()
    with pytest.raises(UnknownDestination):
        state.set_paused("nope", True, "why")
    with pytest.raises(UnknownDestination):
        state.remove_destination("nope")
    with pytest.raises(UnknownDestination):
        state.enqueue("nope", [Queued(1, "e1", "k")], due_ms=0)
    assert state.destination("nope") is None


def test_enqueue_moves_the_cursor_forward_only_and_never_queues_twice(store):
    state = store.forwarding()
    state.add_destination(destination())
    assert (
        state.enqueue("app", [Queued(1, "e1", "a"), Queued(2, "e2", "a")], due_ms=7, cursor=2) == 2
    )
    assert state.enqueue("app", [Queued(2, "e2", "a")], due_ms=9, cursor=1) == 0
    assert state.destination("app").cursor == 2
    assert [(i.position, i.state, i.next_ms) for i in state.pending("app")] == [
        (1, PENDING, 7),
        (2, PENDING, 7),
    ]


def test_record_attempt_sets_state_and_journals_in_one_step(store):
    state = store.forwarding()
    state.add_destination(destination())
    state.enqueue("app", [Queued(1, "e1", "a"), Queued(2, "e2", "b")], due_ms=0)
    assert state.record_attempt(attempt(1, status=500, next_ms=50), PENDING)
    assert state.record_attempt(attempt(1, number=2), DELIVERED)
    assert state.record_attempt(attempt(2, status=503), FAILED)
    assert state.counts("app") == {PENDING: 0, DELIVERED: 1, FAILED: 1}
    journal = state.attempts(event_id="e1")
    assert [(a.number, a.status, a.next_ms, a.response) for a in journal] == [
        (2, 200, None, b"ok"),
        (1, 500, 50, b"ok"),
    ]
    again = state.destination("app")
    assert again.last_success_ms == 1005 and again.last_failure_ms == 1004
    assert "503" in again.last_failure and "given up" in again.last_failure
    # A delivery no longer pending takes no attempt.
    assert not state.record_attempt(attempt(1, number=3), DELIVERED)


def test_record_attempts_commits_a_group_and_skips_gone_deliveries(store):
    state = store.forwarding()
    state.add_destination(destination())
    state.enqueue("app", [Queued(1, "e1", "a"), Queued(3, "e3", "c")], due_ms=0)
    group = [(attempt(1), DELIVERED), (attempt(2), DELIVERED), (attempt(3, status=500), FAILED)]
    assert state.record_attempts(group) == [True, False, True]  # position 2 was never queued
    assert sorted(a.position for a in state.attempts()) == [1, 3]
    assert state.counts("app") == {PENDING: 0, DELIVERED: 1, FAILED: 1}
    with pytest.raises(ValueError):
        state.record_attempts([(attempt(1, number=2), DELIVERED), (attempt(3), "lost")])
    assert len(state.attempts()) == 2  # a group is recorded whole or not at all


class CountingRun:
    """A transaction's `Run` that notes each call: a statement, or a statement per row."""

    def __init__(self, run, calls: list[str]):
        self._run, self._calls = run, calls

    def __call__(self, sql, params=()):
        self._calls.append(sql)
        return self._run(sql, params)

    def many(self, sql, rows):
        self._calls.append(sql)
        return self._run.many(sql, rows)


def counting_calls(state) -> list[str]:
    """The statements `state`'s transactions run from now on (calls, not rows)."""
    calls: list[str] = []
    inner = state._transaction

    @contextmanager
    def counted(*, write=True):
        with inner(write=write) as run:
            yield CountingRun(run, calls)

    state._transaction = counted
    return calls


def test_a_batch_of_events_and_a_group_of_attempts_take_a_few_statements_each(store):
    state = store.forwarding()
    state.add_destination(destination())
    calls = counting_calls(state)
    assert state.enqueue("app", [Queued(p, f"e{p}", f"k{p % 7}") for p in range(1, 201)],
                         due_ms=0, cursor=200) == 200  # fmt: skip
    assert len(calls) <= 3  # the destination's check, the rows, the cursor
    calls.clear()
    group = [(attempt(p), DELIVERED) for p in range(1, 101)]
    group += [(attempt(p, status=500, next_ms=9), PENDING) for p in range(101, 201)]
    assert state.record_attempts(group) == [True] * 200
    assert len(calls) <= 6  # still pending?, states, journal, last success and failure
    assert state.counts("app") == {PENDING: 100, DELIVERED: 100, FAILED: 0}
    assert len(state.attempts(limit=1000)) == 200


def test_a_group_journals_a_later_attempt_of_a_delivery_only_while_it_is_pending(store):
    state = store.forwarding()
    state.add_destination(destination())
    state.enqueue("app", [Queued(1, "e1", "a"), Queued(2, "e2", "b")], due_ms=0)
    group = [
        (attempt(1, status=500, next_ms=5), PENDING),
        (attempt(1, number=2), DELIVERED),
        (attempt(2), DELIVERED),
        (attempt(2, number=2), DELIVERED),
    ]
    assert state.record_attempts(group) == [True, True, True, False]
    assert sorted((a.position, a.number) for a in state.attempts()) == [(1, 1), (1, 2), (2, 1)]


def test_replay_requeues_delivered_and_failed_but_leaves_pending_alone(store):
    state = store.forwarding()
    state.add_destination(destination())
    state.enqueue("app", [Queued(p, f"e{p}", "a") for p in (1, 2, 3)], due_ms=0)
    state.record_attempt(attempt(1), DELIVERED)
    state.record_attempt(attempt(2, status=500), FAILED)
    job = state.create_replay("app", "{}", 2.0)
    queued = state.enqueue("app", [Queued(p, f"e{p}", "a") for p in (1, 2, 3)], due_ms=5,
                           replay_job=job)  # fmt: skip
    assert queued == 2
    assert [(i.position, i.attempts, i.replay_job) for i in state.pending("app")] == [
        (1, 0, job),
        (2, 0, job),
        (3, 0, None),
    ]
    state.set_replay_queued(job, 3)
    assert [(j.id, j.rate, j.queued) for j in state.replays("app")] == [(job, 2.0, 3)]


def test_requeue_failed_puts_only_failed_back(store):
    state = store.forwarding()
    state.add_destination(destination())
    state.enqueue("app", [Queued(p, f"e{p}", "a") for p in (1, 2)], due_ms=0)
    state.record_attempt(attempt(1, status=500), FAILED)
    assert state.requeue_failed("app", replay_job=7, due_ms=3) == 1
    assert [(i.position, i.replay_job) for i in state.pending("app")] == [(1, 7), (2, None)]


def queue(state, keys: str) -> None:
    """Queue one delivery per letter of `keys`, its key, at positions 1, 2, …"""
    state.enqueue("app", [Queued(p, f"e{p}", k) for p, k in enumerate(keys, 1)], due_ms=0)


def held(window) -> list[tuple[int, str]]:
    return [(i.position, i.key) for i in window.items]


def test_pending_by_key_holds_every_key_oldest_while_one_key_fills_the_limit(store):
    state = store.forwarding()
    state.add_destination(destination())
    queue(state, "a" * 20 + "bcbbd")  # a's backlog fills the oldest deliveries
    window = state.pending_by_key("app", limit=12)
    # b, c, d: a share each, 12 // (4 keys + 1); a fills the rest, up to half.
    a = [(p, "a") for p in range(1, 7)]
    assert held(window) == a + [(21, "b"), (22, "c"), (23, "b"), (25, "d")]
    assert (window.more, window.per_key, window.every_key) == (True, 2, True)
    assert window.open_keys == {"a", "b"}  # c and d are all there
    state.record_attempt(attempt(21, event_id="e21"), DELIVERED)
    window = state.pending_by_key("app", limit=12)
    assert [(24, "b")] == [i for i in held(window) if i[0] == 24]  # b's next
    assert window.open_keys == {"a"}


def test_pending_by_key_holds_one_each_of_many_keys_beside_a_backlog(store):
    state = store.forwarding()
    state.add_destination(destination())
    queue(state, "a" * 20 + "bcbbd")
    window = state.pending_by_key("app", limit=5)  # 5 // (4 keys + 1): one each
    assert held(window) == [(1, "a"), (2, "a"), (21, "b"), (22, "c"), (25, "d")]
    assert window.open_keys == {"a", "b"} and window.per_key == 1  # c and d: all there


def test_pending_by_key_leaves_room_when_few_keys_fill_the_limit(store):
    state = store.forwarding()
    state.add_destination(destination())
    queue(state, "a" * 12 + "b" * 4)
    window = state.pending_by_key("app", limit=9)
    # b: its share, 9 // (2 keys + 1); a: the rest, up to half of the limit.
    a, b = [(p, "a") for p in range(1, 5)], [(p, "b") for p in range(13, 16)]
    assert held(window) == a + b
    assert (window.more, window.per_key, window.open_keys) == (True, 3, {"a", "b"})


def test_pending_by_key_is_the_oldest_deliveries_when_they_span_the_limit_or_are_all(store):
    state = store.forwarding()
    state.add_destination(destination())
    queue(state, "abcdefgh")
    window = state.pending_by_key("app", limit=5)  # 5 keys: each one's oldest
    assert held(window) == list(zip(range(1, 6), "abcde", strict=True))
    assert (window.more, window.every_key, window.open_keys) == (True, False, set("abcde"))
    window = state.pending_by_key("app", limit=8)  # all of them
    assert held(window) == list(zip(range(1, 9), "abcdefgh", strict=True))
    assert (window.more, window.every_key, window.open_keys) == (False, True, set())


def test_pending_by_key_past_the_limit_of_keys_still_holds_others_than_the_backlog(store):
    state = store.forwarding()
    state.add_destination(destination())
    queue(state, "z" * 10 + "hgfedcba")
    window = state.pending_by_key("app", limit=5)
    # Past 5 keys, the others are the oldest of the first 6 keys by name (a to f).
    assert held(window) == [(1, "z"), (13, "f"), (14, "e"), (15, "d"), (16, "c")]
    assert (window.more, window.per_key, window.every_key) == (True, 1, False)


def test_journal_cap_drops_oldest_attempts_of_delivered_events_first(store):
    state = store.forwarding()
    state.attempts_keep, state.prune_every = 3, 1
    state.add_destination(destination())
    state.enqueue("app", [Queued(p, f"e{p}", "a") for p in (1, 2)], due_ms=0)
    state.record_attempt(attempt(2, status=500, next_ms=1), PENDING)  # e2, kept (pending)
    state.record_attempt(attempt(1, status=500, next_ms=1), PENDING)
    state.record_attempt(attempt(1, number=2, status=500, next_ms=1), PENDING)
    state.record_attempt(attempt(1, number=3), DELIVERED)  # 4 rows: prune one of e1's
    assert [(a.event_id, a.number) for a in state.attempts()] == [("e1", 3), ("e1", 2), ("e2", 1)]


def test_one_lease_holder_at_a_time_until_release_or_expiry(store):
    state = store.forwarding()
    state.add_destination(destination())
    assert state.acquire_lease("app", "a", 30)
    assert not state.acquire_lease("app", "b", 30)
    assert state.acquire_lease("app", "a", 30)  # renewal
    assert state.lease_holder("app") == "a"
    state.release_lease("app", "b")  # not b's: no effect
    assert state.lease_holder("app") == "a"
    state.release_lease("app", "a")
    assert state.acquire_lease("app", "b", 0.001)
    import time

    time.sleep(0.05)
    assert state.lease_holder("app") is None
    assert state.acquire_lease("app", "a", 30)


def test_pause_and_remove_take_everything_of_the_destination(store):
    state = store.forwarding()
    state.add_destination(destination())
    state.add_destination(destination("other"))
    state.set_paused("app", True, "410 Gone")
    assert (state.destination("app").paused, state.destination("app").pause_reason) == (
        True,
        "410 Gone",
    )
    state.set_paused("app", False, "ignored")
    assert state.destination("app").pause_reason is None
    state.enqueue("app", [Queued(1, "e1", "a")], due_ms=0)
    state.record_attempt(attempt(1), DELIVERED)
    state.acquire_lease("app", "h", 30)
    state.remove_destination("app")
    assert state.destination("app") is None and state.attempts() == []
    assert state.counts("app") == {PENDING: 0, DELIVERED: 0, FAILED: 0}
    assert state.lease_holder("app") is None
    assert [d.name for d in state.destinations()] == ["other"]
