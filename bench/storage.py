"""Benchmark 6: bytes on disk per stored event, against the raw body bytes per event.

Measured on the generated log (after the store closed it, so the WAL is checkpointed),
with a per-table and per-index breakdown from SQLite's dbstat when it is compiled in.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .harness import Figure, spread


def breakdown(path: Path) -> dict[str, int]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        conn.close()
    except sqlite3.Error:
        return {}
    return {name: size for name, size in rows}


def log_bytes(path: Path) -> tuple[int, int]:
    """(bytes in use, file bytes) of the log and its WAL. Pages on SQLite's free list (a
    dropped index, pruned bodies) are not in use: the next appends fill them first."""
    size = sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (page,) = conn.execute("PRAGMA page_size").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    finally:
        conn.close()
    return size - page * free, size


def run(path: Path, info: dict) -> list[Figure]:
    size, file_bytes = log_bytes(path)
    events = info["events"]
    per_event = size / events
    raw = info["body_bytes"] / events
    parts = breakdown(path)
    per_part = {k: round(v / events, 1) for k, v in parts.items()}
    proj = Path(str(path).removesuffix(".db") + ".projections.db")
    extra = {"file_bytes": file_bytes, "bytes_in_use": size, "events": events,
             "bytes_per_event_by_table": per_part}
    if proj.exists():
        extra["projections_file_bytes"] = os.path.getsize(proj)
    return [
        Figure("6 storage", f"log bytes per event at {events:,} events", "B/event",
               spread([per_event]), spread([raw]), "raw body bytes per event", "max_ratio", 1.5,
               "one measurement of a deterministic log (no noise to take a median of): its pages "
               f"in use ({file_bytes - size:,} B of the file on the free list); breakdown by "
               "table/index in results.json", extra=extra)
    ]
