"""Forwarding: every stored event delivered to the user's own endpoints, in order per asset.

A consumer of the log with side effects: its state lives beside the log behind the
store's contract (`store.forwarding`), its delivery loop is a pure scheduler
(`scheduler.py`) driven by one forwarder per destination (`engine.py`), holding the
destination's lease. See docs/forwarding.md.
"""

from .admin import (
    add_destination,
    attempt_summary,
    destination_status,
    event_attempts,
    failed_events,
    is_failing,
    list_destinations,
    parse_time,
    pause,
    remove,
    replay,
    resume,
    state_of,
)
from .client import Answer, Client, HttpClient, TransportError, classify
from .engine import Forwarder, Settings, run
from .errors import ForwardingError
from .keys import ordering_key
from .schedule import DEFAULT_SCHEDULE, next_delay, parse_schedule
from .scheduler import Plan, RateLimiter, plan
from .signing import destination_key, signature, signing_key

__all__ = [
    "DEFAULT_SCHEDULE",
    "Answer",
    "Client",
    "Forwarder",
    "ForwardingError",
    "HttpClient",
    "Plan",
    "RateLimiter",
    "Settings",
    "TransportError",
    "add_destination",
    "attempt_summary",
    "classify",
    "destination_key",
    "destination_status",
    "event_attempts",
    "failed_events",
    "is_failing",
    "list_destinations",
    "next_delay",
    "ordering_key",
    "parse_schedule",
    "parse_time",
    "pause",
    "plan",
    "remove",
    "replay",
    "resume",
    "run",
    "signature",
    "signing_key",
    "state_of",
]
