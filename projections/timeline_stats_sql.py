"""The timeline's aggregates for the overview, each statement whole.

Two tables, kept beside the transformations they count (same generation, same
transaction, same checkpoint), so `stats` reads a few rows per day and never the log.
Each holds the same counts at three grains (`grain` '5m', '1h', '1d'; `bucket` the
grain's start), so a range reads the coarsest rows that tile it:

- `{counts}`: transformations by (bucket of their latest event, status, kind, output
  format, error reason); `n` how many. `reason` is '' unless the status is `error`;
  a missing kind, format or reason is ''.
- `{durations}`: ready transformations having an `accepted` event, by (bucket of their
  latest event, kind, `bin` of their accepted→ready milliseconds); `n` how many. A
  duration under EXACT_BELOW ms is its own bin (bin = ms, negative ones too); above,
  bins are log-spaced, each RATIO times the one before: bin EXACT_BELOW + j holds
  [EXACT_BELOW · RATIO^j, EXACT_BELOW · RATIO^(j+1)). `stats_queries.bin_value` names
  one value per bin within 1 % of every duration in it (√RATIO − 1 = 0.9 %, plus
  rounding to the ms).

A batch (`apply`) changes the rows of each transformation it touches: its old
contribution is taken back and its new one added, at every grain, as one net delta
per key, and keys that fall to zero are deleted, so the tables hold exactly what
STATS_ALL computes from the transformations at the end of a rebuild (a transformation
whose latest event moves to a later bucket moves at each grain).

`{bucket}` is the start of the 5-minute bucket of a `created_at` text (UTC, ms, Z):
its first 15 characters (to the tens of minutes), the minutes' last digit floored to
0 or 5, ':00.000Z'; the hour
and the day are its first 13 and 10 characters.
"""

EXACT_BELOW = 1000  # ms: shorter durations are counted exactly
RATIO = 1.018  # between the edges of two log-spaced bins

BUCKET = (
    "substr({at}, 1, 15) || CASE WHEN substr({at}, 16, 1) < '5' THEN '0' ELSE '5' END || ':00.000Z'"
)
# The three grains, as a table to join; the start of a 5-minute bucket at each grain.
GRAINS = "(SELECT '5m' AS grain UNION ALL SELECT '1h' UNION ALL SELECT '1d') AS grains"


def at_grain(bucket: str) -> str:
    """SQL: the start of the 5-minute bucket `bucket` at the joined row's `grains.grain`."""
    return f"""CASE grains.grain WHEN '5m' THEN {bucket}
    WHEN '1h' THEN substr({bucket}, 1, 13) || ':00:00.000Z'
    ELSE substr({bucket}, 1, 10) || 'T00:00:00.000Z' END"""


CREATE_COUNTS = """
CREATE TABLE IF NOT EXISTS {counts} (
    grain TEXT NOT NULL, bucket TEXT NOT NULL, status TEXT NOT NULL, kind TEXT NOT NULL,
    format TEXT NOT NULL, reason TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (grain, bucket, status, kind, format, reason)
) WITHOUT ROWID
"""

CREATE_DURATIONS = """
CREATE TABLE IF NOT EXISTS {durations} (
    grain TEXT NOT NULL, bucket TEXT NOT NULL, kind TEXT NOT NULL, bin INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (grain, bucket, kind, bin)
) WITHOUT ROWID
"""


# A transformation's keys in both tables at the 5-minute grain, for the transformations
# `where` selects; `bin` is NULL unless it counts as a duration. The duration is the one
# TRANSFORMATION (fields.py) shows as accepted_to_ready_ms.
def _keys(where: str) -> str:
    return f"""
SELECT bucket, status, kind, format, reason,
    CASE WHEN ms < {EXACT_BELOW} THEN ms
         ELSE {EXACT_BELOW} + CAST(ln(ms / {EXACT_BELOW}.0) / ln({RATIO}) AS INTEGER) END AS bin
FROM (
    SELECT {BUCKET.format(at="last_at")} AS bucket, status,
        coalesce(CAST(kind AS TEXT), '') AS kind,
        coalesce(CAST(options ->> '$.format' AS TEXT), '') AS format,
        CASE WHEN status = 'error' THEN coalesce(CAST(error_reason AS TEXT), '') ELSE ''
        END AS reason,
        CASE WHEN status = 'ready' AND accepted_at IS NOT NULL
             THEN CAST(round((julianday(ready_at) - julianday(accepted_at)) * 86400000.0)
                       AS INTEGER)
        END AS ms
    FROM {{transformations}}{where}
)"""


KEYS = _keys("")
# The transformations a batch touches (temp.timeline_rows), before and after MERGE.
_TOUCHED = _keys(" WHERE (asset, tkey) IN (SELECT asset, tkey FROM temp.timeline_rows)")
DELTA_BEFORE = "CREATE TEMP TABLE stats_delta AS SELECT *, -1 AS d FROM (" + _TOUCHED + ")"
DELTA_AFTER = "INSERT INTO temp.stats_delta SELECT *, 1 AS d FROM (" + _TOUCHED + ")"

# The delta at every grain, summed per key: what APPLY_DELTA adds.
DELTA_GRAINS = (
    """
CREATE TEMP TABLE stats_delta_grains AS
SELECT grain, """
    + at_grain("bucket")
    + """ AS bucket, status, kind, format, reason, bin, sum(d) AS d
FROM temp.stats_delta, """
    + GRAINS
    + """
GROUP BY 1, 2, status, kind, format, reason, bin HAVING sum(d) <> 0
"""
)

APPLY_DELTA = (
    """
INSERT INTO {counts} (grain, bucket, status, kind, format, reason, n)
SELECT grain, bucket, status, kind, format, reason, sum(d) FROM temp.stats_delta_grains
GROUP BY grain, bucket, status, kind, format, reason HAVING sum(d) <> 0
ON CONFLICT (grain, bucket, status, kind, format, reason) DO UPDATE SET n = n + excluded.n
""",
    """
DELETE FROM {counts} WHERE n = 0
    AND (grain, bucket, status, kind, format, reason) IN
        (SELECT grain, bucket, status, kind, format, reason FROM temp.stats_delta_grains)
""",
    """
INSERT INTO {durations} (grain, bucket, kind, bin, n)
SELECT grain, bucket, kind, bin, sum(d) FROM temp.stats_delta_grains WHERE bin IS NOT NULL
GROUP BY grain, bucket, kind, bin HAVING sum(d) <> 0
ON CONFLICT (grain, bucket, kind, bin) DO UPDATE SET n = n + excluded.n
""",
    """
DELETE FROM {durations} WHERE n = 0
    AND (grain, bucket, kind, bin) IN
        (SELECT grain, bucket, kind, bin FROM temp.stats_delta_grains WHERE bin IS NOT NULL)
""",
)

# Both tables from every transformation at once (the end of a rebuild), as two
# independent halves (a rebuild runs them on two connections at once, `stats_aside`):
# each computes its keys from the (wide) transformations and sums them into the
# 5-minute rows, the hours from the 5-minute rows and the days from the hours.
_ROLL_UP = {
    "1h": ("5m", "substr(bucket, 1, 13) || ':00:00.000Z'"),
    "1d": ("1h", "substr(bucket, 1, 10) || 'T00:00:00.000Z'"),
}
STATS_COUNTS = (
    """
INSERT INTO {counts} (grain, bucket, status, kind, format, reason, n)
SELECT '5m', bucket, status, kind, format, reason, count(*) FROM ("""
    + KEYS
    + """)
GROUP BY bucket, status, kind, format, reason
""",
    *(
        f"""
INSERT INTO {{counts}} (grain, bucket, status, kind, format, reason, n)
SELECT '{grain}', {start}, status, kind, format, reason, sum(n) FROM {{counts}}
WHERE grain = '{finer}'
GROUP BY 2, status, kind, format, reason
"""
        for grain, (finer, start) in _ROLL_UP.items()
    ),
)
STATS_DURATIONS = (
    """
INSERT INTO {durations} (grain, bucket, kind, bin, n)
SELECT '5m', bucket, kind, bin, count(*) FROM ("""
    + _keys(" WHERE +status = 'ready' AND accepted_at IS NOT NULL")  # a scan, not the index
    + """)
GROUP BY bucket, kind, bin
""",
    *(
        f"""
INSERT INTO {{durations}} (grain, bucket, kind, bin, n)
SELECT '{grain}', {start}, kind, bin, sum(n) FROM {{durations}}
WHERE grain = '{finer}'
GROUP BY 2, kind, bin
"""
        for grain, (finer, start) in _ROLL_UP.items()
    ),
)
STATS_ALL = STATS_COUNTS + STATS_DURATIONS
