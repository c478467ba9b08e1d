"""The timeline projection's SQL, each statement whole.

Table names are the only thing substituted, in one step (`video_timeline.sql`):
`{events}`, `{transformations}`, `{assets}` and `{stage}` are the generation's tables
(`timeline_events_g3`, ...), `{source}` the table raw events are read from. Values
are bound parameters (`:after`, `:until`).

Orders: events are ordered by (created_at, log position), compared as SQL row
values; a transformation stores, for each event it takes fields from, that event's
created_at and position (`*_at`, `*_pos`). Only BULK_MERGE builds an order key, `ord`
= `created_at || printf('%015d', position)`, transiently, to pick min/max events with
plain aggregates: comparing two ords compares created_at, then position (created_at
is fixed-width UTC text), and an ord's last 15 characters are its event's position.
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
SELECT position, event_id, etype, created_at,
    CASE WHEN lower(substr(url, 1, 7)) = 'http://' THEN '//' || substr(url, 8)
         WHEN lower(substr(url, 1, 8)) = 'https://' THEN '//' || substr(url, 9)
         ELSE url END AS asset,
    CASE WHEN rid IS NULL THEN 'e:' || event_id ELSE 'r:' || rid END AS tkey,
    url, rid, rurl, kind, options, out_url, vm, timings, reason
FROM (
    SELECT position, id AS event_id, substr(type, 22) AS etype, created_at,
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
    created_at TEXT NOT NULL, asset TEXT NOT NULL, tkey TEXT NOT NULL
)"""

# What `finish` picks from the few events a min/max designates, by position.
STAGE_COLUMNS = """(
    position INTEGER PRIMARY KEY, url, rid, rurl, kind, options, out_url, vm, timings, reason
)"""

CREATE_EVENTS = "CREATE TABLE IF NOT EXISTS {events} " + EVENTS_COLUMNS

# One row per (asset, transformation key). Each group of columns comes from one event:
# the descriptive ones (url ... options) from the info event (the earliest accepted,
# `accepted_at`/`accepted_pos`, else the earliest event, `first_at`/`first_pos`);
# `ready_*`, output, metadata and timings from the latest ready; `error_*` from the
# latest error; `status` from the latest terminal one of those two (else `accepted`).
# `attempts` counts the terminal (ready and error) events.
CREATE_TRANSFORMATIONS = """
CREATE TABLE IF NOT EXISTS {transformations} (
    asset TEXT NOT NULL, tkey TEXT NOT NULL,
    url TEXT NOT NULL, request_id TEXT, request_url TEXT, kind TEXT, options TEXT,
    status TEXT NOT NULL,
    accepted_at TEXT, accepted_pos INTEGER,
    ready_at TEXT, ready_pos INTEGER, output_url TEXT, video_metadata TEXT, timings TEXT,
    error_at TEXT, error_pos INTEGER, error_reason TEXT,
    first_at TEXT NOT NULL, first_pos INTEGER NOT NULL, last_at TEXT NOT NULL,
    last_pos INTEGER NOT NULL,
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
    # An asset's events; and, covering every column BULK_MERGE reads (the rowid is the
    # position), its transformations' events already grouped: the merge sorts nothing.
    "CREATE INDEX IF NOT EXISTS {events}_asset ON {events} (asset, tkey, created_at, etype)",
    "CREATE INDEX IF NOT EXISTS {transformations}_status ON {transformations} (status, last_at)",
    "CREATE INDEX IF NOT EXISTS {assets}_last ON {assets} (last_at, asset)",
)

# The rows of temp.timeline_rows (ROWS) merged into their transformations, one event
# at a time. Every column is a min or max over the events seen by (created_at,
# position), or taken from the event such a min/max designates (no ties: positions are
# unique), so the merge is commutative and associative: any order or batching of the
# same events gives the same row. In SET, every column name on the right is the row's
# value before this event (SQLite evaluates all of SET against the old row); the
# excluded row is one event, at (excluded.first_at, excluded.first_pos).
_INFO_WINS = """(CASE WHEN excluded.accepted_pos IS NOT NULL
        THEN accepted_pos IS NULL
            OR (excluded.accepted_at, excluded.accepted_pos) < (accepted_at, accepted_pos)
        ELSE accepted_pos IS NULL
            AND (excluded.first_at, excluded.first_pos) < (first_at, first_pos) END)"""
_READY_WINS = """(excluded.ready_pos IS NOT NULL AND (ready_pos IS NULL
        OR (excluded.ready_at, excluded.ready_pos) > (ready_at, ready_pos)))"""
_ERROR_WINS = """(excluded.error_pos IS NOT NULL AND (error_pos IS NULL
        OR (excluded.error_at, excluded.error_pos) > (error_at, error_pos)))"""
_ACCEPTED_WINS = """(excluded.accepted_pos IS NOT NULL AND (accepted_pos IS NULL
        OR (excluded.accepted_at, excluded.accepted_pos) < (accepted_at, accepted_pos)))"""
_TERMINAL_WINS = """(excluded.status <> 'accepted'
        AND (ready_pos IS NULL OR (excluded.first_at, excluded.first_pos) > (ready_at, ready_pos))
        AND (error_pos IS NULL OR (excluded.first_at, excluded.first_pos) > (error_at, error_pos)))"""

MERGE = """
INSERT INTO {transformations} (
    asset, tkey, url, request_id, request_url, kind, options, status,
    accepted_at, accepted_pos, ready_at, ready_pos, output_url, video_metadata, timings,
    error_at, error_pos, error_reason, first_at, first_pos, last_at, last_pos,
    events, attempts)
SELECT asset, tkey, url, rid, rurl, kind, options, etype,
    CASE WHEN etype = 'accepted' THEN created_at END,
    CASE WHEN etype = 'accepted' THEN position END,
    CASE WHEN etype = 'ready' THEN created_at END, CASE WHEN etype = 'ready' THEN position END,
    out_url, vm, timings,
    CASE WHEN etype = 'error' THEN created_at END, CASE WHEN etype = 'error' THEN position END,
    reason,
    created_at, position, created_at, position,
    1, etype <> 'accepted'
FROM temp.timeline_rows
WHERE true
ON CONFLICT (asset, tkey) DO UPDATE SET
    url = CASE WHEN <info> THEN excluded.url ELSE url END,
    request_id = CASE WHEN <info> THEN excluded.request_id ELSE request_id END,
    request_url = CASE WHEN <info> THEN excluded.request_url ELSE request_url END,
    kind = CASE WHEN <info> THEN excluded.kind ELSE kind END,
    options = CASE WHEN <info> THEN excluded.options ELSE options END,

    status = CASE WHEN <terminal> THEN excluded.status ELSE status END,

    accepted_at = CASE WHEN <accepted> THEN excluded.accepted_at ELSE accepted_at END,
    accepted_pos = CASE WHEN <accepted> THEN excluded.accepted_pos ELSE accepted_pos END,

    ready_at = CASE WHEN <ready> THEN excluded.ready_at ELSE ready_at END,
    ready_pos = CASE WHEN <ready> THEN excluded.ready_pos ELSE ready_pos END,
    output_url = CASE WHEN <ready> THEN excluded.output_url ELSE output_url END,
    video_metadata = CASE WHEN <ready> THEN excluded.video_metadata ELSE video_metadata END,
    timings = CASE WHEN <ready> THEN excluded.timings ELSE timings END,

    error_at = CASE WHEN <error> THEN excluded.error_at ELSE error_at END,
    error_pos = CASE WHEN <error> THEN excluded.error_pos ELSE error_pos END,
    error_reason = CASE WHEN <error> THEN excluded.error_reason ELSE error_reason END,

    first_at = CASE WHEN (excluded.first_at, excluded.first_pos) < (first_at, first_pos)
                    THEN excluded.first_at ELSE first_at END,
    first_pos = CASE WHEN (excluded.first_at, excluded.first_pos) < (first_at, first_pos)
                     THEN excluded.first_pos ELSE first_pos END,
    last_at = CASE WHEN (excluded.last_at, excluded.last_pos) > (last_at, last_pos)
                   THEN excluded.last_at ELSE last_at END,
    last_pos = CASE WHEN (excluded.last_at, excluded.last_pos) > (last_at, last_pos)
                    THEN excluded.last_pos ELSE last_pos END,
    events = events + 1,
    attempts = attempts + excluded.attempts
"""
for _name, _fragment in (
    ("<info>", _INFO_WINS),
    ("<terminal>", _TERMINAL_WINS),
    ("<accepted>", _ACCEPTED_WINS),
    ("<ready>", _READY_WINS),
    ("<error>", _ERROR_WINS),
):
    MERGE = MERGE.replace(_name, _fragment)

# MERGE done for all events at once (the end of a rebuild): one sort of the narrow
# events table by (asset, tkey) computes every min/max over `ord` (built here, never
# stored); the values "from the event with the min/max" are then read from {stage} by
# that event's position (an ord's last 15 characters), its time is the ord without them.
BULK_MERGE = """
INSERT INTO {transformations} (
    asset, tkey, url, request_id, request_url, kind, options, status,
    accepted_at, accepted_pos, ready_at, ready_pos, output_url, video_metadata, timings,
    error_at, error_pos, error_reason, first_at, first_pos, last_at, last_pos,
    events, attempts)
SELECT g.asset, g.tkey, i.url, i.rid, i.rurl, i.kind, i.options,
    CASE WHEN g.ready_ord IS NULL AND g.error_ord IS NULL THEN 'accepted'
         WHEN g.error_ord IS NULL OR g.ready_ord > g.error_ord THEN 'ready'
         ELSE 'error' END,
    substr(g.accepted_ord, 1, length(g.accepted_ord) - 15), CAST(substr(g.accepted_ord, -15) AS INTEGER),
    substr(g.ready_ord, 1, length(g.ready_ord) - 15), CAST(substr(g.ready_ord, -15) AS INTEGER),
    r.out_url, r.vm, r.timings,
    substr(g.error_ord, 1, length(g.error_ord) - 15), CAST(substr(g.error_ord, -15) AS INTEGER), e.reason,
    g.first_at, CAST(substr(g.first_ord, -15) AS INTEGER),
    g.last_at, CAST(substr(g.last_ord, -15) AS INTEGER),
    g.events, g.attempts
FROM (
    SELECT asset, tkey,
        min(CASE WHEN etype = 'accepted' THEN ord END) AS accepted_ord,
        max(CASE WHEN etype = 'ready' THEN ord END) AS ready_ord,
        max(CASE WHEN etype = 'error' THEN ord END) AS error_ord,
        min(created_at) AS first_at, min(ord) AS first_ord,
        max(created_at) AS last_at, max(ord) AS last_ord,
        count(*) AS events,
        count(*) FILTER (WHERE etype <> 'accepted') AS attempts
    FROM (
        SELECT asset, tkey, etype, created_at, created_at || printf('%015d', position) AS ord
        FROM {events}
    )
    GROUP BY asset, tkey
) AS g
JOIN temp.{stage} AS i
    ON i.position = CAST(substr(coalesce(g.accepted_ord, g.first_ord), -15) AS INTEGER)
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
     ORDER BY x.first_at, x.first_pos LIMIT 1),
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
     ORDER BY x.first_at, x.first_pos LIMIT 1),
    min(first_at), max(last_at), count(*),
    count(*) FILTER (WHERE status = 'ready'),
    count(*) FILTER (WHERE status = 'error'),
    count(*) FILTER (WHERE status = 'accepted'),
    sum(events)
FROM {transformations} AS t
GROUP BY asset
"""
