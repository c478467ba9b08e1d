"""A log with one forwarding destination whose deliveries went one way or the other,
written through the store's forwarding state (no forwarder runs): for the API, page and
metrics tests."""

from __future__ import annotations

import forwarding
from store.encoding import now_ms
from store.forwarding import DELIVERED, FAILED, SCHEDULED, Attempt, Queued

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL = "http://user:hunter2@127.0.0.1:9/hook"


def attempt(event, number: int, *, status=None, error=None, next_ms=None) -> Attempt:
    return Attempt(
        "app", event.position, event.id, number, SCHEDULED, None,
        now_ms(), 12, status, error, b"answer" if status else b"", next_ms,
    )  # fmt: skip


def one_delivered_one_failed(store) -> tuple[str, str]:
    """Destination `app` over the log's first two events: the first delivered (one
    attempt, 200), the second failed (a 500 then a refused connection). Returns their ids."""
    forwarding.add_destination(store, "app", URL, secret=SECRET, start="start", retry_schedule="1s")
    events = store.get_positions([1, 2])
    state = store.forwarding()
    state.enqueue("app", [Queued(e.position, e.id, e.id) for e in events], due_ms=0, cursor=2)
    good, bad = events
    state.record_attempt(attempt(good, 1, status=200), DELIVERED)
    state.record_attempt(attempt(bad, 1, status=500, next_ms=now_ms() + 1000), "pending")
    state.record_attempt(attempt(bad, 2, error="connection_refused"), FAILED)
    return good.id, bad.id
