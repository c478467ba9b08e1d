"""Compact column encodings of the SQLite log, and their inverses for the read API.

Times the store writes (`received_at`) are integers, milliseconds since the Unix epoch
in UTC, and known signature schemes are small integer codes: 6 and 0 bytes in a record
instead of 24 and 17. A value that has no compact form (an imported scheme name the
store does not know) is kept as text; decoding passes text through unchanged, so rows
written either way read back the same.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

# Codes are part of the file format: append new schemes, never renumber.
SCHEMES = ("standard-webhooks", "x-ik-signature")
_SCHEME_CODES = {name: code for code, name in enumerate(SCHEMES)}


def now_ms() -> int:
    """Now, as the store records times: integer milliseconds since the epoch, UTC."""
    return time.time_ns() // 1_000_000


def encode_time(value: str | None) -> int | str | None:
    """A normalised 'YYYY-MM-DDTHH:MM:SS.mmmZ' time as epoch milliseconds.

    Anything that would not read back as the same text (another format, more precision)
    is kept verbatim, never altered.
    """
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    ms = (moment - _EPOCH) // _MS
    return ms if decode_time(ms) == value else value


def decode_time(value: int | str | None) -> str | None:
    """Epoch milliseconds as 'YYYY-MM-DDTHH:MM:SS.mmmZ'; text passes through."""
    if not isinstance(value, int):
        return value
    text = (_EPOCH + value * _MS).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def encode_scheme(name: str | None) -> int | str | None:
    return _SCHEME_CODES.get(name, name) if name is not None else None


def decode_scheme(value: int | str | None) -> str | None:
    """A scheme code as its name; a name without a code passes through as text."""
    if isinstance(value, int):
        return SCHEMES[value] if 0 <= value < len(SCHEMES) else str(value)
    return value


def utc_now() -> str:
    """Now, as the store writes times: UTC ISO-8601 with milliseconds and Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
