"""Times and durations as people write and read them, for the API, the pages and the CLI.

A time is an ISO-8601 instant (`2026-12-07T19:00:00Z`, naive means UTC), a date
(`2026-12-07`: its midnight UTC), or a span back from now (`90m`, `24h`, `7d`). The
answer is the log's own form of created_at (UTC, milliseconds, Z), so it compares as
text with the read models and the log. Anything else, or a time whose arithmetic
leaves the calendar (`0001-01-01T00:00:00+01:00`, `999999d`), is `InvalidQuery` with
the same text wherever it was typed (the reader is `projections.timespec`, so that
forwarding reads times as the receiver does). `duration` is the one way a span is shown
(`24 min 51 s`), on the pages, in the picture and in the CLI's tables.
"""

from __future__ import annotations

from projections.timespec import (
    FORMS,
    instant,
    optional_instant,
    position_or_instant,
    span,
)

__all__ = ["FORMS", "duration", "instant", "optional_instant", "position_or_instant", "span"]


def duration(ms: float | None) -> str:
    """A duration for people, as the pages and the CLI show it: 850 ms, 13.2 s,
    24 min 51 s, 3 h 5 min, 2 d 4 h; "-" when unknown."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
