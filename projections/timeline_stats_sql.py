"""The timeline's aggregates for the overview, each statement whole.

Two tables, kept beside the transformations they count (same generation, same
transaction, same checkpoint), so `stats` reads a few rows per 5-minute bucket and
never the log:

- `{counts}`: transformations by (bucket of their latest event, status, kind, output
  format, error reason); `n` how many. `reason` is '' unless the status is `error`;
  a missing kind, format or reason is ''.
- `{durations}`: ready transformations having an `accepted` event, by (bucket of their
  latest event, kind, accepted→ready milliseconds); `n` how many. Every duration is
  kept, to the millisecond, so percentiles over any range of buckets are exact.

A batch (`apply`) changes the row of each transformation it touches: its old
contribution is taken back and its new one added, as one net delta per key, and keys
that fall to zero are deleted, so the tables hold exactly what STATS_ALL computes
from the transformations at the end of a rebuild.

`{bucket}` is the start of the 5-minute bucket of a `created_at` text (UTC, ms, Z):
its first 14 characters, the minutes floored to a multiple of 5, ':00.000Z'.
"""

BUCKET = (
    "substr({at}, 1, 14) || printf('%02d', CAST(substr({at}, 15, 2) AS INTEGER) / 5 * 5)"
    " || ':00.000Z'"
)

CREATE_COUNTS = """
CREATE TABLE IF NOT EXISTS {counts} (
    bucket TEXT NOT NULL, status TEXT NOT NULL, kind TEXT NOT NULL, format TEXT NOT NULL,
    reason TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (bucket, status, kind, format, reason)
) WITHOUT ROWID
"""

CREATE_DURATIONS = """
CREATE TABLE IF NOT EXISTS {durations} (
    bucket TEXT NOT NULL, kind TEXT NOT NULL, ms INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (bucket, kind, ms)
) WITHOUT ROWID
"""

# A transformation's keys in both tables; `ms` is NULL unless it counts as a duration.
# The duration is the one TRANSFORMATION (fields.py) shows as accepted_to_ready_ms.
KEYS = (
    """
SELECT """
    + BUCKET.format(at="last_at")
    + """ AS bucket, status,
    coalesce(CAST(kind AS TEXT), '') AS kind,
    coalesce(CAST(options ->> '$.format' AS TEXT), '') AS format,
    CASE WHEN status = 'error' THEN coalesce(CAST(error_reason AS TEXT), '') ELSE '' END AS reason,
    CASE WHEN status = 'ready' AND accepted_at IS NOT NULL
         THEN CAST(round((julianday(ready_at) - julianday(accepted_at)) * 86400000.0) AS INTEGER)
    END AS ms
FROM {transformations}"""
)

# The transformations a batch touches (temp.timeline_rows), before and after MERGE.
_TOUCHED = " WHERE (asset, tkey) IN (SELECT asset, tkey FROM temp.timeline_rows)"
DELTA_BEFORE = "CREATE TEMP TABLE stats_delta AS SELECT *, -1 AS d FROM (" + KEYS + _TOUCHED + ")"
DELTA_AFTER = "INSERT INTO temp.stats_delta SELECT *, 1 AS d FROM (" + KEYS + _TOUCHED + ")"

APPLY_DELTA = (
    """
INSERT INTO {counts} (bucket, status, kind, format, reason, n)
SELECT bucket, status, kind, format, reason, sum(d) FROM temp.stats_delta
GROUP BY bucket, status, kind, format, reason HAVING sum(d) <> 0
ON CONFLICT (bucket, status, kind, format, reason) DO UPDATE SET n = n + excluded.n
""",
    """
DELETE FROM {counts} WHERE n = 0
    AND (bucket, status, kind, format, reason) IN
        (SELECT bucket, status, kind, format, reason FROM temp.stats_delta)
""",
    """
INSERT INTO {durations} (bucket, kind, ms, n)
SELECT bucket, kind, ms, sum(d) FROM temp.stats_delta WHERE ms IS NOT NULL
GROUP BY bucket, kind, ms HAVING sum(d) <> 0
ON CONFLICT (bucket, kind, ms) DO UPDATE SET n = n + excluded.n
""",
    """
DELETE FROM {durations} WHERE n = 0
    AND (bucket, kind, ms) IN
        (SELECT bucket, kind, ms FROM temp.stats_delta WHERE ms IS NOT NULL)
""",
)

# Both tables from every transformation at once (the end of a rebuild).
STATS_ALL = (
    """
INSERT INTO {counts} (bucket, status, kind, format, reason, n)
SELECT bucket, status, kind, format, reason, count(*) FROM ("""
    + KEYS
    + """)
GROUP BY bucket, status, kind, format, reason
""",
    """
INSERT INTO {durations} (bucket, kind, ms, n)
SELECT bucket, kind, ms, count(*) FROM ("""
    + KEYS
    + """) WHERE ms IS NOT NULL
GROUP BY bucket, kind, ms
""",
)
