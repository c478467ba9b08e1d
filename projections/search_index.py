"""The search projection: every event of the log, of any type, findable by the words of its body.

`SEARCH` is the `Projection` to register. Tables (generation g):

- `search_events_g`: one row per event (position, id, type, created_at), indexed by
  (type, position): the listing of every event, newest first, by type and time.
- `search_text_g`: a contentless FTS5 table (`content=''`, so the words are indexed
  and the text itself is not kept; the body stays in the log) whose rowid is the
  log position. It indexes the body's JSON string values (`body_words`: not its keys,
  numbers or punctuation, which every body shares) with the `unicode61` tokenizer, at
  `detail=none`: it records which events hold a word, not where. Measured on the
  bench's generated log (20,000 events, 11.5 MB of bodies): 0.18x the body bytes at
  `none`, 0.33x at `column`, 0.36x at `full`. An exact phrase is therefore found by
  its words in the index and then checked against the candidates' bodies (`search`).
  `columnsize=0`: results come by position, never by rank, so FTS5 keeps no size per
  event (its `_docsize` table: a B-tree insert per event and 9.5 MB at 1M events).

The words of a body are found in Python (`body_words`, orjson), the same function for
catch-up, for the rebuild's extract threads (as a SQL function) and for the phrase
check. Against staging each batch's bodies in a TEMP table and walking them with
`json_tree`, catch-up's CPU per event at 800-event batches went from about 20 to 15 µs
(interleaved, 3 rounds, on a loaded machine).
A body that is not JSON is listed and indexes no word: no event is poison here.
Rows only add, so any batching or order of the same events gives the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from store import Event
from store.sqlite_engine import sqlite3

from .framework import Projection, Tables

VERSION = 2  # 2: columnsize=0, words by `body_words`
TOKENIZE = "unicode61 remove_diacritics 0"
AUTOMERGE = 4  # FTS5's default: merge once 4 segments of a level are there

CREATE = (
    """CREATE TABLE IF NOT EXISTS {events} (
    position INTEGER PRIMARY KEY, id TEXT NOT NULL, type TEXT NOT NULL,
    created_at TEXT NOT NULL)""",
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS {{text}} USING fts5(
    words, content='', detail=none, columnsize=0, tokenize='{TOKENIZE}')""",
)
CREATE_INDEXES = ("CREATE INDEX IF NOT EXISTS {events}_type ON {events} (type, position)",)

# (position, id, type, created_at, words) of {source}'s events in (after, until].
ROWS = """
SELECT position, id, type, created_at, search_body_words(body) AS words
FROM {source} WHERE position > :after AND position <= :until
"""

ADD = (
    "INSERT INTO {events} (position, id, type, created_at) SELECT position, id, type, created_at FROM {rows}",
    "INSERT INTO {text} (rowid, words) SELECT position, words FROM {rows} WHERE words IS NOT NULL",
)


def string_values(doc: object) -> list[str]:
    """The string values of a parsed JSON document (not its keys), in no set order.

    A loop, not recursion: orjson parses 1,024 levels, past Python's recursion limit.
    """
    found: list[str] = []
    stack: list[Any] = [doc]
    while stack:
        value = stack.pop()
        kind = type(value)  # orjson makes exactly these types
        if kind is str:
            found.append(value)
        elif kind is dict:
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
    return found


def body_words(body: bytes | str | None) -> str | None:
    """The text the index tokenizes for `body`: its distinct string values, space-separated.

    None for a body that is not JSON (or is empty: pruned) or holds no string: the
    event is listed and indexes no word. The index keeps no positions, so a string
    repeated in a body (a URL in the request and the output) is given once.
    """
    if not body:
        return None
    try:
        values = string_values(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None
    # A set: the index is a set of (word, event), whatever the order of the text.
    return " ".join(set(values)) if values else None


def _fill(statement: str, t: Tables, **names: str) -> str:
    return statement.format(events=t.events, text=t.text, **names)


def _create_tables(conn: sqlite3.Connection, t: Tables) -> None:
    for statement in CREATE:
        conn.execute(_fill(statement, t))


def _bulk_setup(conn: sqlite3.Connection, t: Tables) -> None:
    """The tables of a rebuild, the index's incremental merges off until `finish`."""
    _create_tables(conn, t)
    # A rebuild appends one segment per chunk; merging them as they come (automerge)
    # rewrites the same postings again and again, when `finish`'s optimize merges them
    # all once: about half the index's load time over the bench's 1M-event log.
    conn.execute(f"INSERT INTO {t.text} ({t.text}, rank) VALUES ('automerge', 0)")


def setup(conn: sqlite3.Connection, t: Tables) -> None:
    _create_tables(conn, t)
    for statement in CREATE_INDEXES:
        conn.execute(_fill(statement, t))


def reset(conn: sqlite3.Connection, t: Tables) -> None:
    for table in (t.events, t.text):
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def apply(conn: sqlite3.Connection, t: Tables, events: Sequence[Event]) -> None:
    """List a batch's events and index their words."""
    conn.executemany(
        f"INSERT INTO {t.events} (position, id, type, created_at) VALUES (?, ?, ?, ?)",
        [(e.position, e.id, e.type, e.created_at) for e in events],
    )
    conn.executemany(
        f"INSERT INTO {t.text} (rowid, words) VALUES (?, ?)",
        [(e.position, w) for e in events if (w := body_words(e.body)) is not None],
    )


def bulk_extract(
    conn: sqlite3.Connection, source: str, schema: str, after: int, until: int
) -> None:
    """Extract `source`'s events in (after, until] and their words into `schema`.rows."""
    # On an extract thread: sqlite3 takes the GIL only for each body's `body_words`.
    conn.create_function("search_body_words", 1, body_words, deterministic=True)
    conn.execute(
        f"CREATE TABLE {schema}.rows AS " + ROWS.format(source=source),
        {"after": int(after), "until": int(until)},
    )


def bulk_sql(conn: sqlite3.Connection, t: Tables, schema: str) -> int:
    """`apply` for the rows `bulk_extract` made in `schema`; returns how many events."""
    conn.execute(_fill(ADD[0], t, rows=f"{schema}.rows"))
    count = conn.execute("SELECT changes()").fetchone()[0]
    conn.execute(_fill(ADD[1], t, rows=f"{schema}.rows"))
    return count


def finish(conn: sqlite3.Connection, t: Tables) -> None:
    """Build the listing's index, and merge the index's segments into one."""
    for statement in CREATE_INDEXES:
        conn.execute(_fill(statement, t))
    conn.execute(f"INSERT INTO {t.text} ({t.text}) VALUES ('optimize')")
    # Catch-up's small batches merge as they come again, FTS5's default.
    conn.execute(f"INSERT INTO {t.text} ({t.text}, rank) VALUES ('automerge', {AUTOMERGE})")


SEARCH = Projection(
    name="search",
    version=VERSION,
    handles=None,
    setup=setup,
    reset=reset,
    apply=apply,
    finish=finish,
    bulk_setup=_bulk_setup,
    bulk_extract=bulk_extract,
    bulk_sql=bulk_sql,
    table_names=("events", "text"),
)
