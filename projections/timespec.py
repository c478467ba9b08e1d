"""Times as people type them into a query, a page or a command: one reader for all.

A time is an ISO-8601 instant (`2026-12-07T19:00:00Z`, naive means UTC), a date
(`2026-12-07`: its midnight UTC), or a span back from now (`90m`, `24h`, `7d`). The
answer is the log's own form of created_at (UTC, milliseconds, Z), so it compares as
text with the read models and the log. Anything else, or a time whose arithmetic
leaves the calendar (`0001-01-01T00:00:00+01:00`, `999999d`), is `InvalidQuery` with
the same text wherever it was typed: the query API, the pages, the CLI, and
forwarding's replay selection.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .framework import InvalidQuery

FORMS = "an ISO-8601 time (2026-12-07T19:00:00Z), a date (2026-12-07) or 90m, 24h, 7d"
_SPAN = re.compile(r"(\d{1,7})([mhd])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400}


def _refused(value: str, why: str = "not a time") -> InvalidQuery:
    shown = value if len(value) <= 40 else value[:40] + "…"
    return InvalidQuery(f"{why}: {shown!r}; use {FORMS}")


def span(value: str) -> timedelta | None:
    """`90m`, `24h`, `7d` as a timedelta; None when the text is not such a span."""
    found = _SPAN.fullmatch(value.strip())
    if found is None:
        return None
    seconds = int(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise _refused(value, "out of range") from None


def instant(value: str, now: datetime | str | None = None) -> str:
    """`value` as created_at text (UTC, milliseconds, Z); a span counts back from `now`.

    `now` (None: the real time) matters only for a span. Raises InvalidQuery naming the
    forms accepted, for text that is none of them or a time out of the calendar's range.
    """
    if not isinstance(value, str):
        raise _refused(str(value))
    back = span(value)
    try:
        if back is not None:
            moment = _moment(now) - back
        else:
            moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            moment = moment.astimezone(UTC)
    except ValueError:
        raise _refused(value) from None
    except OverflowError:
        raise _refused(value, "out of range") from None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def optional_instant(value: str | None, now: datetime | str | None = None) -> str | None:
    """`instant(value, now)`, or None for an absent or empty value."""
    if value is None or not value.strip():
        return None
    return instant(value, now)


def position_or_instant(value: str, now: datetime | str | None = None) -> int | str:
    """An `as_of`: a log position (digits) or a time in any form `instant` reads."""
    if value.strip().isascii() and value.strip().isdigit():  # not '²': int() refuses it
        return int(value)
    return instant(value, now)


def _moment(now: datetime | str | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, str):
        now = datetime.fromisoformat(now)
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)
