"""The server's log lines: text (the default) or one JSON object per line.

Every process of `serve` (the supervisor, its request workers, the catch-up child)
calls `configure` with `Config.log_format`. Whatever a request carries (a path with a
newline, a NUL, an undecodable byte) may reach a message, so the text form escapes
every character that is not printable, and the backslash itself: one record is one
line, and a line cannot be forged from outside. The JSON form gets the same guarantee
from JSON's own escaping.

The fields of a delivery travel as `extra=` keys of the record (`FIELDS`): the text
form appends those present as `key=value`, the JSON form gives each its own key.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

FORMATS = ("text", "json")
# The record attributes a line may carry (set with `extra=`), in the order they print.
FIELDS = ("request_id", "event_id", "position", "outcome", "status", "code")
_TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The request being answered on this thread (set by the HTTP middleware): every record
# logged while it runs carries its id, not only the access line.
current_request: ContextVar[str | None] = ContextVar("ikledger_request_id", default=None)


def escape(text: str) -> str:
    """`text` with backslashes doubled and every unprintable character as an escape."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def _fields(record: logging.LogRecord) -> dict:
    found = {name: getattr(record, name, None) for name in FIELDS}
    if found["request_id"] is None:
        found["request_id"] = current_request.get()
    return {name: value for name, value in found.items() if value is not None}


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value…`, the message and values escaped to one line."""

    def __init__(self, fmt: str = _TEXT):
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        line = super().formatMessage(record)
        fields = _fields(record)
        if hasattr(record, "status"):  # the access line: its message says id and status
            fields.pop("request_id", None)
            fields.pop("status", None)
        if fields:
            line += " " + " ".join(f"{k}={escape(str(v))}" for k, v in fields.items())
        return line

    def formatException(self, ei) -> str:
        # A traceback keeps its lines, each marked as a continuation and escaped: an
        # exception's message (which may quote a request) cannot start a record's line.
        text = super().formatException(ei)
        return "\n".join("  | " + escape(line) for line in text.splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the `FIELDS` present
    and, for an exception, its traceback as `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exc"] = record.exc_text
        return json.dumps(document, ensure_ascii=True, default=str)


def formatter(log_format: str, text_format: str = _TEXT) -> logging.Formatter:
    """The formatter of `log_format` (one of FORMATS)."""
    return JsonFormatter() if log_format == "json" else TextFormatter(text_format)


def configure(level: str, log_format: str = "text", *, text_format: str = _TEXT) -> None:
    """Send the root logger's records to stderr at `level`, in `log_format`.

    Replaces the root's handlers, so calling it again (a child re-configuring what it
    inherited) never doubles a line.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format, text_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
