"""`projection_status(db)`: every projection's version, checkpoint, lag and last error."""

from __future__ import annotations

from collections.abc import Sequence

from .db import ProjectionDB, read_meta


def projection_status(db: ProjectionDB, names: Sequence[str] | None = None) -> list[dict]:
    """Every projection's version, checkpoint, lag behind the log and last error."""
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
            "lag": max(head - m.checkpoint, 0),
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
