"""Retry schedules, Retry-After bounds and the pure scheduler, driven by a fake clock."""

from __future__ import annotations

import random

import pytest

from forwarding import ForwardingError, RateLimiter, next_delay, parse_schedule, plan
from forwarding.schedule import format_schedule, parse_retry_after
from store.forwarding import PENDING, Item


def test_default_schedule_parses_to_milliseconds_and_back():
    schedule = parse_schedule("5s,5m,30m,2h,5h,10h,10h")
    assert schedule == (5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000)
    assert format_schedule(schedule) == "5s,5m,30m,2h,5h,10h,10h"
    assert parse_schedule("250ms, 1.5s") == (250, 1500)


@pytest.mark.parametrize("bad", ["5", "5x", "s", "-5s", "0s", "5s,,5m", "1e3s", "8d", "5 s"])
def test_a_schedule_that_does_not_parse_is_a_clear_error(bad):
    with pytest.raises(ForwardingError, match="duration|above 0"):
        parse_schedule(bad)


def test_delays_have_at_most_twenty_percent_jitter_and_end_after_the_schedule():
    rng = random.Random(1)
    delays = [next_delay((10_000, 20_000), 1, rng) for _ in range(500)]
    assert 8_000 <= min(delays) < 8_500 and 11_500 < max(delays) <= 12_000
    assert next_delay((10_000, 20_000), 3, rng) is None  # 3 attempts made: given up
    assert next_delay((), 1, rng) is None


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, 15_000, 15_000),  # within [delay, 2 × delay]: as asked
        (503, 1_000, 10_000),  # sooner than the schedule: the schedule
        (429, 3_600_000, 20_000),  # far later: twice the scheduled delay
        (500, 15_000, None),  # only 429 and 503 are honoured
    ],
)
def test_retry_after_is_honoured_within_the_schedule_bounds(status, retry_after, expected):
    delay = next_delay((10_000,), 1, random.Random(2), status=status, retry_after_ms=retry_after)
    if expected is None:
        assert 8_000 <= delay <= 12_000
    else:
        assert delay == expected


def test_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("7", now=0) == 7000
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:30 GMT", now=10) == 20_000
    assert parse_retry_after("soon", now=0) is None


def item(position, key, next_ms=0, job=None) -> Item:
    return Item("d", position, f"e{position}", key, PENDING, 0, next_ms, job)


def positions(result) -> list[int]:
    return [i.position for i in result.start]


def test_only_the_oldest_pending_event_of_a_key_is_attempted():
    pending = [item(1, "a"), item(2, "a"), item(3, "b"), item(4, "c", next_ms=500)]
    result = plan(pending, now_ms=0, in_flight={}, max_in_flight=8)
    assert positions(result) == [1, 3]
    assert result.wake_ms == 500  # key c's head becomes due


def test_a_key_in_flight_blocks_its_later_events_until_it_leaves_pending():
    pending = [item(1, "a"), item(2, "a"), item(3, "b")]
    assert positions(plan(pending, now_ms=0, in_flight={1: "a"}, max_in_flight=8)) == [3]
    # Event 1 got its 2xx (no longer pending): event 2 goes.
    assert positions(plan(pending[1:], now_ms=0, in_flight={}, max_in_flight=8)) == [2, 3]


def test_a_retrying_head_holds_back_its_key_but_not_others():
    pending = [item(1, "a", next_ms=1_000), item(2, "a"), item(3, "b")]
    result = plan(pending, now_ms=0, in_flight={}, max_in_flight=8)
    assert (positions(result), result.wake_ms) == ([3], 1_000)
    assert positions(plan(pending, now_ms=1_000, in_flight={}, max_in_flight=8)) == [1, 3]


def test_unordered_drops_the_per_key_rule():
    pending = [item(1, "a"), item(2, "a"), item(3, "a")]
    result = plan(pending, now_ms=0, in_flight={1: "a"}, max_in_flight=8, ordered=False)
    assert positions(result) == [2, 3]


def test_max_in_flight_caps_parallel_keys_oldest_first():
    pending = [item(p, f"k{p}") for p in range(10, 0, -1)]
    assert positions(plan(pending, now_ms=0, in_flight={20: "x"}, max_in_flight=3)) == [1, 2]


def test_an_attempt_being_journalled_holds_its_key_but_no_capacity():
    pending = [item(1, "a"), item(2, "a"), item(3, "b"), item(4, "c"), item(5, "d")]
    result = plan(pending, now_ms=0, in_flight={3: "b"}, max_in_flight=2, settling={1: "a"})
    assert positions(result) == [4]  # not 1 (settling) nor 2 (its key): one slot free


def test_rate_limit_spaces_attempts_by_the_fake_clock():
    limiter = RateLimiter(2.0, now_ms=0)  # 2 per second, a burst of 2
    pending = [item(p, f"k{p}") for p in range(1, 6)]
    first = plan(pending, now_ms=0, in_flight={}, max_in_flight=8, limiters={None: limiter})
    assert positions(first) == [1, 2] and first.wake_ms == 501
    rest = pending[2:]
    assert (
        positions(plan(rest, now_ms=100, in_flight={}, max_in_flight=8, limiters={None: limiter}))
        == []
    )
    assert positions(
        plan(rest, now_ms=501, in_flight={}, max_in_flight=8, limiters={None: limiter})
    ) == [3]


def test_a_replay_job_rate_throttles_only_its_own_deliveries():
    limiters = {None: RateLimiter(None, 0), 7: RateLimiter(1.0, 0)}
    pending = [item(1, "a", job=7), item(2, "b", job=7), item(3, "c")]
    result = plan(pending, now_ms=0, in_flight={}, max_in_flight=8, limiters=limiters)
    assert positions(result) == [1, 3] and result.wake_ms == 1001


def test_a_window_given_in_position_order_is_planned_as_the_sorted_one():
    # The forwarder keeps its window in position order and says so (in_order=True):
    # the plan is the one the scheduler makes from the same deliveries in any order.
    pending = [item(1, "a"), item(2, "a"), item(3, "b", next_ms=700), item(4, "c"), item(5, "d")]
    shuffled = plan(pending[::-1], now_ms=0, in_flight={5: "d"}, max_in_flight=3)
    given = plan(pending, now_ms=0, in_flight={5: "d"}, max_in_flight=3, in_order=True)
    assert (positions(given), given.wake_ms) == (positions(shuffled), shuffled.wake_ms)
    assert positions(given) == [1, 4]
