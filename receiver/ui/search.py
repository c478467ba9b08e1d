"""Search by asset URL or request id: the one read the query functions do not offer.

A thin query over the served generation of the timeline read model, found through the
projections package's public API (`projection_status` names the generation,
`TIMELINE.tables` its tables, `ProjectionDB.read` the connection). It scans the
transformations table (no index serves a substring), bounded by `limit`.
"""

from __future__ import annotations

import projections
from projections import TIMELINE, ProjectionDB
from store.sqlite_engine import sqlite3

_SQL = """
SELECT url, request_id, status, last_at FROM {transformations}
WHERE request_id = :q OR instr(lower(url), lower(:q)) > 0
ORDER BY last_at DESC, asset DESC, tkey DESC LIMIT :limit
"""


def search(db: ProjectionDB, text: str, *, limit: int = 50) -> list[dict]:
    """Transformations whose request id is `text` or whose asset URL contains it (any case).

    Newest activity first, at most `limit`. Empty text or no read model yet: [].
    A rebuild swapping generations between the two reads is retried once.
    """
    text = text.strip()
    if not text:
        return []
    for attempt in range(2):
        served = projections.projection_status(db, [TIMELINE.name])
        if not served:
            return []
        tables = TIMELINE.tables(served[0]["generation"])
        try:
            with db.read() as conn:
                rows = conn.execute(
                    _SQL.format(transformations=tables.transformations),
                    {"q": text, "limit": limit},
                ).fetchall()
            break
        except sqlite3.OperationalError:
            if attempt:
                raise
    return [
        {"asset": url, "request_id": request_id, "status": status, "last_at": last_at}
        for url, request_id, status, last_at in rows
    ]
