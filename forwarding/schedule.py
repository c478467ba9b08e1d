"""Retry schedules: parsing `5s,5m,30m,2h`, jitter, and the delay after a failed attempt.

A schedule lists the delays before each retry: `len(schedule) + 1` attempts in all.
After the last one the event is given up (failed).

`Retry-After` on a 429 or 503 is honoured within bounds: the delay is the server's
value clamped to [the scheduled delay, 2 × the scheduled delay] (as Svix does): never
sooner than the schedule, so a server cannot make us spend the attempts at once, and
never more than twice it, so a server cannot stall a destination for days. Jitter is
not applied to a delay the server asked for.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .errors import ForwardingError

DEFAULT_SCHEDULE = "5s,5m,30m,2h,5h,10h,10h"
JITTER = 0.2  # ±20 %
MAX_DELAY_MS = 7 * 24 * 3600 * 1000  # one step of a schedule: a week at most

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")


def parse_duration(text: str) -> int:
    """`250ms`, `5s`, `1.5m`, `2h` as milliseconds; ForwardingError for anything else."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ForwardingError(
            f"not a duration: {text.strip()!r} (a number and a unit: ms, s, m or h, e.g. 5s)"
        )
    ms = round(float(match[1]) * _UNITS[match[2]])
    if not 0 < ms <= MAX_DELAY_MS:
        raise ForwardingError(f"a retry delay must be above 0 and at most 7 days: {text!r}")
    return ms


def parse_schedule(text: str) -> tuple[int, ...]:
    """`5s,5m,30m` as delays in milliseconds; an empty schedule is one attempt only.

    Raises ForwardingError naming the step that does not parse.
    """
    text = text.strip()
    if not text:
        return ()
    return tuple(parse_duration(step) for step in text.split(","))


def format_schedule(delays_ms: tuple[int, ...]) -> str:
    """The schedule in the shortest units that keep it exact (`5s,5m`)."""
    steps = []
    for ms in delays_ms:
        for unit in ("h", "m", "s", "ms"):
            if ms % _UNITS[unit] == 0:
                steps.append(f"{ms // _UNITS[unit]}{unit}")
                break
    return ",".join(steps)


def jittered(delay_ms: int, rng: random.Random) -> int:
    """`delay_ms` moved by up to ±20 %."""
    return max(1, round(delay_ms * (1 + rng.uniform(-JITTER, JITTER))))


def parse_retry_after(value: str | None, now: float) -> int | None:
    """A `Retry-After` header (seconds, or an HTTP date) in milliseconds; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() is true of '²' too
        return int(value) * 1000
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, round((moment - datetime.fromtimestamp(now, UTC)).total_seconds() * 1000))


def next_delay(
    schedule_ms: tuple[int, ...],
    attempt: int,
    rng: random.Random,
    *,
    status: int | None = None,
    retry_after_ms: int | None = None,
) -> int | None:
    """The delay before the attempt after failed attempt number `attempt` (1-based).

    None when the schedule is spent: the event is given up. `retry_after_ms` counts
    only on a 429 or 503, clamped as the module docstring says.
    """
    if attempt > len(schedule_ms):
        return None
    delay = schedule_ms[attempt - 1]
    if status in (429, 503) and retry_after_ms is not None:
        return min(max(retry_after_ms, delay), 2 * delay)
    return jittered(delay, rng)
