"""Parsing and validation of a verified webhook body.

The body is parsed once, strictly: UTF-8 without BOM, RFC 8259 JSON as I-JSON
(RFC 7493) narrows it: no NaN, Infinity or numbers that overflow to it, no
duplicate keys, no unpaired surrogate escapes, bounded nesting and number
length. Then a top-level object with a non-empty string `id`, a string `type`,
an ISO-8601 `created_at` (or `createdAt` when `created_at` is absent, as one
table of ImageKit's docs spells it) and an object `data`. Unknown event types
are valid.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

MAX_ID_LENGTH = 256
MAX_TYPE_LENGTH = 128
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class InvalidEvent(Exception):
    """The body is not a well-formed ImageKit event; `code` is stable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    id: str
    type: str
    created_at: str  # normalised: UTC, milliseconds, Z
    document: dict[str, Any]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidEvent("duplicate_key", f"JSON object has the key {key!r} twice")
            seen.add(key)
    return result


def _no_constants(name: str) -> Any:
    raise InvalidEvent("invalid_json", f"{name} is not valid JSON")


def _finite(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):  # 1e400 is Infinity in disguise; the read models refuse it too
        raise InvalidEvent("invalid_json", f"number {literal[:40]} is out of range")
    return value


_decoder = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=_finite
)


# Where a key may end in whitespace before its colon, or a string may hold a quote
# (escaped, or as \u0022), counting `":` says nothing; those bodies take the strict path.
_SPACED_COLON = re.compile(rb'"\s+:')


def _no_duplicate_keys(body: bytes, document: Any) -> bool:
    """True when the text provably has no key twice in one object; False when unsure.

    With no quote inside any string and every key followed directly by its colon,
    `":` occurs once per key in the text, and once per key of the parsed document
    in its compact serialisation: equal counts mean no key was folded away.
    """
    if b'\\"' in body or b"\\u" in body or _SPACED_COLON.search(body):
        return False
    return body.count(b'":') == orjson.dumps(document).count(b'":')


def parse_event(body: bytes) -> ParsedEvent:
    """Parse and validate one event body; raises InvalidEvent saying what is wrong.

    Fast path: orjson, which refuses everything the strict parser below refuses
    except duplicate keys, ruled out by counting keys (`_no_duplicate_keys`).
    Anything orjson refuses, or a body whose keys cannot be counted that way, goes
    through the strict standard-library parser, which accepts it or says why not.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = _parse_strictly(body)
    else:
        if not _no_duplicate_keys(body, document):
            document = _parse_strictly(body)
    if not isinstance(document, dict):
        raise InvalidEvent("not_an_object", "body must be a JSON object")
    return ParsedEvent(
        id=_string(document, "id", MAX_ID_LENGTH),
        type=_string(document, "type", MAX_TYPE_LENGTH),
        created_at=normalise_time(_created_at(document)),
        document=_with_data(document),
    )


def _parse_strictly(body: bytes) -> Any:
    """The standard-library parse with every check; raises InvalidEvent naming the fault."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("invalid_utf8", f"body is not UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise InvalidEvent("invalid_json", "body starts with a byte order mark")
    try:
        document = _decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(
            "invalid_json", f"body is not JSON: {exc.msg} at char {exc.pos}"
        ) from None
    except RecursionError:
        raise InvalidEvent("invalid_json", "body is nested too deeply") from None
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
        raise InvalidEvent("invalid_json", "body has a number that is too long") from None
    if _ESCAPED_SURROGATE.search(text) and _has_unpaired_surrogate(document):
        # Neither SQLite text nor orjson (the read models) can hold one (RFC 7493, I-JSON).
        raise InvalidEvent("invalid_json", "body has an unpaired UTF-16 surrogate escape")
    return document


def _has_unpaired_surrogate(document: Any) -> bool:
    """True when any key or string holds a lone surrogate (pairs were joined by the decoder)."""
    pending = [document]
    while pending:  # iterative: the document may be nested as deep as the decoder allows
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _string(document: dict, name: str, limit: int) -> str:
    if name not in document:
        raise InvalidEvent("missing_field", f"field {name!r} is missing")
    value = document[name]
    if not isinstance(value, str):
        raise InvalidEvent("invalid_field", f"field {name!r} must be a string")
    if not value:
        raise InvalidEvent("invalid_field", f"field {name!r} must not be empty")
    if len(value) > limit:
        raise InvalidEvent("invalid_field", f"field {name!r} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise InvalidEvent("invalid_field", f"field {name!r} contains control characters")
    return value


def _created_at(document: dict) -> str:
    name = "created_at" if "created_at" in document else "createdAt"
    if name not in document:
        raise InvalidEvent("missing_field", "field 'created_at' is missing")
    value = document[name]
    if not isinstance(value, str):
        raise InvalidEvent("invalid_field", f"field {name!r} must be an ISO-8601 timestamp string")
    return value


def _with_data(document: dict) -> dict:
    if "data" not in document:
        raise InvalidEvent("missing_field", "field 'data' is missing")
    if not isinstance(document["data"], dict):
        raise InvalidEvent("invalid_field", "field 'data' must be an object")
    return document


_CANONICAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def normalise_time(value: str) -> str:
    """An ISO-8601 timestamp as UTC with milliseconds and Z; naive times are taken as UTC."""
    if _CANONICAL.fullmatch(value):  # what ImageKit sends: only check it is a real date
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(
                "invalid_field", f"created_at {value[:40]!r} is not a valid date"
            ) from None
        return value
    if not _TIMESTAMP.fullmatch(value):
        raise InvalidEvent(
            "invalid_field", f"created_at {value[:40]!r} is not an ISO-8601 timestamp"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(
            "invalid_field", f"created_at {value[:40]!r} is not a valid date"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidEvent("invalid_field", "created_at is out of range") from None
    return parsed.isoformat(timespec="milliseconds").replace("+00:00", "Z")
