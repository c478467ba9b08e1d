"""One way in for a body: validated and made the store's `NewEvent`.

`POST /webhook` (after its signature check) and `ikledger import` both hand their bytes
here, so what the log accepts, and the fields it indexes, never differ between them.
"""

from __future__ import annotations

from store import NewEvent

from .validation import parse_event


def new_event(
    body: bytes,
    *,
    scheme: str,
    received_at: str | None = None,
    remote_addr: str | None = None,
) -> NewEvent:
    """The event `body` holds, as the store appends it; the bytes are kept exactly.

    Raises InvalidEvent (with its stable `code`) when the body is not a valid event.
    """
    parsed = parse_event(body)
    return NewEvent(
        id=parsed.id,
        type=parsed.type,
        created_at=parsed.created_at,
        body=body,
        scheme=scheme,
        received_at=received_at,
        remote_addr=remote_addr,
    )
