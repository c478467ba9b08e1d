"""`projection_status(db)`: every projection's version, checkpoint, lag and last error.

Lag is measured against the log the read models belong to (`db.read()` refuses a file
bound to another log) and is never clamped: a checkpoint ahead of the log's head is
the state `ahead_of_log` with a negative lag, an error to show as one, never "lag 0".
"""

from __future__ import annotations

from collections.abc import Sequence

from .db import ProjectionDB, read_meta


def state_of(checkpoint: int, head: int) -> str:
    """`current` at the head, `behind` below it, `ahead_of_log` past it (an error)."""
    if checkpoint > head:
        return "ahead_of_log"
    return "behind" if checkpoint < head else "current"


def projection_status(db: ProjectionDB, names: Sequence[str] | None = None) -> list[dict]:
    """Every projection's version, checkpoint, state, lag behind the log and last error.

    `state` is `current`, `behind` or `ahead_of_log`; `lag` is head − checkpoint
    (negative when ahead).
    """
    head = db.store.last_position()
    with db.read() as conn:
        rows = conn.execute("SELECT name FROM projection_meta ORDER BY name").fetchall()
        metas = [read_meta(conn, name) for (name,) in rows if names is None or name in names]
    return [
        {
            "name": m.name,
            "version": m.version,
            "generation": m.generation,
            "checkpoint": m.checkpoint,
            "log_position": head,
            "state": state_of(m.checkpoint, head),
            "lag": head - m.checkpoint,
            "error": None
            if m.error_message is None
            else {
                "position": m.error_position,
                "event_id": m.error_event_id,
                "message": m.error_message,
                "at": m.error_at,
                "attempts": m.error_attempts,
            },
        }
        for m in metas
    ]
