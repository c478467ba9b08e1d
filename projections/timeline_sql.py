"""The timeline projection's SQL, each statement whole.

Table names are the only thing substituted, in one step (`video_timeline.sql`):
`{events}`, `{transformations}`, `{assets}` and `{stage}` are the generation's tables
(`timeline_events_g3`, ...), `{source}` the table raw events are read from. Values
are bound parameters (`:after`, `:until`).

Orders: `ord` is `created_at || printf('%015d', position)`, so comparing two ords
compares created_at, then log position (created_at is fixed-width UTC text), and the
last 15 characters of an ord are the position of the event it belongs to.
"""

# Raw events (position, id, type, created_at, body) of {source} → one row per video
# event naming an asset, with every column the events table and the merge need. The
# fields are read by SQLite's JSON functions, for catch-up and rebuild alike: no
# Python per event, and the same extraction whatever path an event takes. SQLite
# caches the parse of a body across the calls of one row, but each call still walks
# its path, so calls are few and fields a type never uses are not read for it.
# `LIMIT -1 OFFSET 0` keeps the inner query from being flattened into the outer one,
# which would evaluate `url` and `rid` (three JSON calls each) once per reference.
ROWS = """
SELECT position, event_id, etype, created_at, ord,
    CASE WHEN lower(substr(url, 1, 7)) = 'http://' THEN '//' || substr(url, 8)
         WHEN lower(substr(url, 1, 8)) = 'https://' THEN '//' || substr(url, 9)
         ELSE url END AS asset,
    CASE WHEN rid IS NULL THEN 'e:' || event_id ELSE 'r:' || rid END AS tkey,
    url, rid, rurl, kind, options, out_url, vm, timings, reason
FROM (
    SELECT position, id AS event_id, substr(type, 22) AS etype, created_at,
        created_at || printf('%015d', position) AS ord,
        CASE WHEN json_type(j, '$.data.asset.url') = 'text'
             THEN nullif(j ->> '$.data.asset.url', '') END AS url,
        CASE WHEN json_type(j, '$.request.x_request_id') = 'text'
             THEN nullif(j ->> '$.request.x_request_id', '') END AS rid,
        j ->> '$.request.url' AS rurl,
        j ->> '$.data.transformation.type' AS kind,
        nullif(j -> '$.data.transformation.options', 'null') AS options,
        CASE WHEN type = 'video.transformation.ready'
             THEN j ->> '$.data.transformation.output.url' END AS out_url,
        CASE WHEN type = 'video.transformation.ready'
             THEN nullif(j -> '$.data.transformation.output.video_metadata', 'null') END AS vm,
        CASE WHEN type = 'video.transformation.ready'
             THEN nullif(j -> '$.timings', 'null') END AS timings,
        CASE WHEN type = 'video.transformation.error'
             THEN j ->> '$.data.transformation.error.reason' END AS reason
    FROM (
        SELECT position, id, type, created_at, CAST(body AS TEXT) AS j
        FROM {source}
        WHERE position > :after AND position <= :until
            AND type IN ('video.transformation.accepted', 'video.transformation.ready',
                         'video.transformation.error')
    )
    LIMIT -1 OFFSET 0
)
WHERE url IS NOT NULL
"""

EVENTS_COLUMNS = """(
    position INTEGER PRIMARY KEY, event_id TEXT NOT NULL, etype TEXT NOT NULL,
    created_at TEXT NOT NULL, ord TEXT NOT NULL, asset TEXT NOT NULL, tkey TEXT NOT NULL
)"""

# What `finish` picks from the few events a min/max designates, by position.
STAGE_COLUMNS = """(
    position INTEGER PRIMARY KEY, url, rid, rurl, kind, options, out_url, vm, timings, reason
)"""

CREATE_EVENTS = "CREATE TABLE IF NOT EXISTS {events} " + EVENTS_COLUMNS

# One row per (asset, transformation key). Each group of columns comes from one event:
# the descriptive ones (url ... options) from the event `info_key` names (the earliest
# accepted, else the earliest event); `status` from the latest terminal one (`term_ord`);
# `ready_*`, output, metadata and timings from the latest ready (`ready_ord`); `error_*`
# from the latest error (`error_ord`). `accepted_at` is the earliest accepted's time;
# `attempts` counts the terminal (ready and error) events.
CREATE_TRANSFORMATIONS = """
CREATE TABLE IF NOT EXISTS {transformations} (
    asset TEXT NOT NULL, tkey TEXT NOT NULL,
    url TEXT NOT NULL, request_id TEXT, request_url TEXT, kind TEXT, options TEXT,
    info_key TEXT NOT NULL,
    status TEXT NOT NULL, term_ord TEXT,
    accepted_at TEXT,
    ready_ord TEXT, ready_at TEXT, output_url TEXT, video_metadata TEXT, timings TEXT,
    error_ord TEXT, error_at TEXT, error_reason TEXT,
    first_at TEXT NOT NULL, first_ord TEXT NOT NULL, last_at TEXT NOT NULL,
    last_ord TEXT NOT NULL,
    events INTEGER NOT NULL, attempts INTEGER NOT NULL,
    PRIMARY KEY (asset, tkey)
) WITHOUT ROWID
"""

CREATE_ASSETS = """
CREATE TABLE IF NOT EXISTS {assets} (
    asset TEXT PRIMARY KEY, url TEXT NOT NULL, first_at TEXT NOT NULL, last_at TEXT NOT NULL,
    transformations INTEGER NOT NULL, ready INTEGER NOT NULL, error INTEGER NOT NULL,
    pending INTEGER NOT NULL, events INTEGER NOT NULL
) WITHOUT ROWID
"""

CREATE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS {events}_asset ON {events} (asset, ord)",
    "CREATE INDEX IF NOT EXISTS {transformations}_status ON {transformations} (status, last_at)",
    "CREATE INDEX IF NOT EXISTS {assets}_last ON {assets} (last_at, asset)",
)

# The rows of temp.timeline_rows (ROWS) merged into their transformations, one event
# at a time. Every column is a min or max over the events seen, or taken from the
# event such a min/max designates (no ties: an ord ends with the log position), so the
# merge is commutative and associative: any order or batching of the same events gives
# the same row. In SET, every column name on the right is the row's value before this
# event (SQLite evaluates all of SET against the old row).
MERGE = """
INSERT INTO {transformations} (
    asset, tkey, url, request_id, request_url, kind, options, info_key, status, term_ord,
    accepted_at, ready_ord, ready_at, output_url, video_metadata, timings,
    error_ord, error_at, error_reason, first_at, first_ord, last_at, last_ord,
    events, attempts)
SELECT asset, tkey, url, rid, rurl, kind, options,
    CASE WHEN etype = 'accepted' THEN '0' ELSE '1' END || ord,
    etype, CASE WHEN etype <> 'accepted' THEN ord END,
    CASE WHEN etype = 'accepted' THEN created_at END,
    CASE WHEN etype = 'ready' THEN ord END, CASE WHEN etype = 'ready' THEN created_at END,
    out_url, vm, timings,
    CASE WHEN etype = 'error' THEN ord END, CASE WHEN etype = 'error' THEN created_at END,
    reason,
    created_at, ord, created_at, ord,
    1, etype <> 'accepted'
FROM temp.timeline_rows
WHERE true
ON CONFLICT (asset, tkey) DO UPDATE SET
    url = CASE WHEN excluded.info_key < info_key THEN excluded.url ELSE url END,
    request_id = CASE WHEN excluded.info_key < info_key THEN excluded.request_id
                      ELSE request_id END,
    request_url = CASE WHEN excluded.info_key < info_key THEN excluded.request_url
                       ELSE request_url END,
    kind = CASE WHEN excluded.info_key < info_key THEN excluded.kind ELSE kind END,
    options = CASE WHEN excluded.info_key < info_key THEN excluded.options ELSE options END,
    info_key = min(info_key, excluded.info_key),

    status = CASE WHEN excluded.term_ord > coalesce(term_ord, '') THEN excluded.status
                  ELSE status END,
    term_ord = coalesce(max(term_ord, excluded.term_ord), term_ord, excluded.term_ord),

    accepted_at = coalesce(min(accepted_at, excluded.accepted_at), accepted_at,
                           excluded.accepted_at),

    ready_at = CASE WHEN excluded.ready_ord > coalesce(ready_ord, '') THEN excluded.ready_at
                    ELSE ready_at END,
    output_url = CASE WHEN excluded.ready_ord > coalesce(ready_ord, '')
                      THEN excluded.output_url ELSE output_url END,
    video_metadata = CASE WHEN excluded.ready_ord > coalesce(ready_ord, '')
                          THEN excluded.video_metadata ELSE video_metadata END,
    timings = CASE WHEN excluded.ready_ord > coalesce(ready_ord, '') THEN excluded.timings
                   ELSE timings END,
    ready_ord = coalesce(max(ready_ord, excluded.ready_ord), ready_ord, excluded.ready_ord),

    error_at = CASE WHEN excluded.error_ord > coalesce(error_ord, '') THEN excluded.error_at
                    ELSE error_at END,
    error_reason = CASE WHEN excluded.error_ord > coalesce(error_ord, '')
                        THEN excluded.error_reason ELSE error_reason END,
    error_ord = coalesce(max(error_ord, excluded.error_ord), error_ord, excluded.error_ord),

    first_at = min(first_at, excluded.first_at),
    first_ord = min(first_ord, excluded.first_ord),
    last_at = max(last_at, excluded.last_at),
    last_ord = max(last_ord, excluded.last_ord),
    events = events + 1,
    attempts = attempts + excluded.attempts
"""

# MERGE done for all events at once (the end of a rebuild): one sort of the narrow
# events table by (asset, tkey) computes every min/max; the values "from the event with
# the min/max X" are then read from {stage} by that event's position (the last 15
# characters of an ord), and the time of the latest ready/error is its ord without them.
BULK_MERGE = """
INSERT INTO {transformations} (
    asset, tkey, url, request_id, request_url, kind, options, info_key, status, term_ord,
    accepted_at, ready_ord, ready_at, output_url, video_metadata, timings,
    error_ord, error_at, error_reason, first_at, first_ord, last_at, last_ord,
    events, attempts)
SELECT g.asset, g.tkey, i.url, i.rid, i.rurl, i.kind, i.options, g.info_key,
    CASE WHEN g.term_ord IS NULL THEN 'accepted' WHEN g.term_ord = g.ready_ord THEN 'ready'
         ELSE 'error' END,
    g.term_ord, g.accepted_at,
    g.ready_ord, substr(g.ready_ord, 1, length(g.ready_ord) - 15), r.out_url, r.vm, r.timings,
    g.error_ord, substr(g.error_ord, 1, length(g.error_ord) - 15), e.reason,
    g.first_at, g.first_ord, g.last_at, g.last_ord, g.events, g.attempts
FROM (
    SELECT *,
        coalesce('0' || accepted_ord, '1' || first_ord) AS info_key,
        CASE WHEN ready_ord IS NULL THEN error_ord WHEN error_ord IS NULL THEN ready_ord
             ELSE max(ready_ord, error_ord) END AS term_ord
    FROM (
        SELECT asset, tkey,
            min(CASE WHEN etype = 'accepted' THEN ord END) AS accepted_ord,
            min(CASE WHEN etype = 'accepted' THEN created_at END) AS accepted_at,
            max(CASE WHEN etype = 'ready' THEN ord END) AS ready_ord,
            max(CASE WHEN etype = 'error' THEN ord END) AS error_ord,
            min(created_at) AS first_at, min(ord) AS first_ord,
            max(created_at) AS last_at, max(ord) AS last_ord,
            count(*) AS events,
            count(*) FILTER (WHERE etype <> 'accepted') AS attempts
        FROM {events}
        GROUP BY asset, tkey
    )
) AS g
JOIN temp.{stage} AS i ON i.position = CAST(substr(g.info_key, -15) AS INTEGER)
LEFT JOIN temp.{stage} AS r ON r.position = CAST(substr(g.ready_ord, -15) AS INTEGER)
LEFT JOIN temp.{stage} AS e ON e.position = CAST(substr(g.error_ord, -15) AS INTEGER)
"""

# The asset rows of the assets a batch touched (temp.timeline_rows), counted from their
# transformations; ASSETS_ALL counts every asset (the end of a rebuild).
ASSETS_OF_BATCH = """
INSERT OR REPLACE INTO {assets} (
    asset, url, first_at, last_at, transformations, ready, error, pending, events)
SELECT asset,
    (SELECT x.url FROM {transformations} AS x WHERE x.asset = t.asset
     ORDER BY x.first_ord LIMIT 1),
    min(first_at), max(last_at), count(*),
    count(*) FILTER (WHERE status = 'ready'),
    count(*) FILTER (WHERE status = 'error'),
    count(*) FILTER (WHERE status = 'accepted'),
    sum(events)
FROM {transformations} AS t
WHERE asset IN (SELECT asset FROM temp.timeline_rows)
GROUP BY asset
"""

ASSETS_ALL = """
INSERT OR REPLACE INTO {assets} (
    asset, url, first_at, last_at, transformations, ready, error, pending, events)
SELECT asset,
    (SELECT x.url FROM {transformations} AS x WHERE x.asset = t.asset
     ORDER BY x.first_ord LIMIT 1),
    min(first_at), max(last_at), count(*),
    count(*) FILTER (WHERE status = 'ready'),
    count(*) FILTER (WHERE status = 'error'),
    count(*) FILTER (WHERE status = 'accepted'),
    sum(events)
FROM {transformations} AS t
GROUP BY asset
"""
