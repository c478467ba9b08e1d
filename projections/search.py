"""`search_events(db, q, ...)`: events of any type, newest first, by the words of their body.

`q` is words (every one must occur in the body's string values) and "exact phrases"
in double quotes (their words in that order, inside one string value). It is never
handed to FTS5 as syntax: it is cut into words as the index's tokenizer cuts text
(runs of letters and digits, lower-cased), each passed as an FTS5 string, so quotes,
`*`, `NEAR`, `-`, `OR` and parentheses are just text. The index (`search_index`) has
no positions, so a phrase's candidates (events holding all its words) are checked
against their bodies from the log, at most `MAX_CANDIDATES` of them per call.

Without `q` it lists every event, newest first. Results are dicts
{position, id, type, created_at}; page on with `after` = the last position returned.
"""

from __future__ import annotations

import re
from datetime import datetime

import orjson

from .db import ProjectionDB, read_meta
from .fields import to_time
from .framework import InvalidQuery
from .search_index import SEARCH, string_values

MAX_CANDIDATES = 5000
_WORD = re.compile(r"[^\W_]+")
_PHRASE = re.compile(r'"([^"]*)"')


def words(text: str) -> list[str]:
    """`text` cut into words as the index's `unicode61` tokenizer cuts it, lower-cased."""
    return _WORD.findall(text.lower())


def parse(q: str) -> tuple[list[str], list[list[str]]]:
    """Every word of `q`, and its quoted phrases of two words or more."""
    phrases = [words(p) for p in _PHRASE.findall(q)]
    return words(q), [p for p in phrases if len(p) > 1]


def match_expression(terms: list[str]) -> str:
    """An FTS5 query matching documents that hold every term, each an FTS5 string."""
    return " AND ".join('"' + term.replace('"', '""') + '"' for term in dict.fromkeys(terms))


def holds_phrases(body: bytes, phrases: list[list[str]]) -> bool:
    """Whether every phrase's words occur, consecutive, within one string value of `body`."""
    try:
        values = [words(s) for s in string_values(orjson.loads(body))]
    except orjson.JSONDecodeError:
        return False
    for phrase in phrases:
        n = len(phrase)
        if not any(v[i : i + n] == phrase for v in values for i in range(len(v) - n + 1)):
            return False
    return True


def search_events(
    db: ProjectionDB,
    q: str | None = None,
    *,
    type: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    limit: int = 50,
    after: int | None = None,
) -> list[dict]:
    """Events matching `q` (None: all), of `type`, created in [since, until), with a
    position below `after`, newest (highest position) first, at most `limit`.

    Raises InvalidQuery for a `q` with no word, a bad time or limit. Empty before the
    first catch-up.
    """
    if not 1 <= limit <= 1000:
        raise InvalidQuery("limit must be between 1 and 1000")
    where = ["e.position < :after"]
    params: dict[str, object] = {"after": 2**63 - 1 if after is None else after}
    if type is not None:
        where.append("e.type = :type")
        params["type"] = type
    if since is not None:
        where.append("e.created_at >= :since")
        params["since"] = to_time(since)
    if until is not None:
        where.append("e.created_at < :until")
        params["until"] = to_time(until)
    phrases: list[list[str]] = []
    if q is not None:
        terms, phrases = parse(q)
        if not terms:
            raise InvalidQuery("q has no word to search for")
        params["match"] = match_expression(terms)
    with db.read() as conn:
        meta = read_meta(conn, SEARCH.name)
        if meta is None:
            return []
        t = SEARCH.tables(meta.generation)
        if q is None:
            statement = (
                f"SELECT e.position, e.id, e.type, e.created_at FROM {t.events} AS e"
                f" WHERE {' AND '.join(where)} ORDER BY e.position DESC LIMIT :limit"
            )
        else:
            statement = (
                f"SELECT e.position, e.id, e.type, e.created_at FROM {t.text} AS f"
                f" JOIN {t.events} AS e ON e.position = f.rowid"
                f" WHERE {t.text} MATCH :match AND f.rowid < :after AND {' AND '.join(where)}"
                " ORDER BY f.rowid DESC LIMIT :limit"
            )
        if not phrases:
            rows = conn.execute(statement, {**params, "limit": limit}).fetchall()
        else:
            rows = _with_phrases(db, conn, statement, params, phrases, limit)
    return [{"position": p, "id": i, "type": ty, "created_at": at} for p, i, ty, at in rows]


def _with_phrases(db, conn, statement, params, phrases, limit) -> list[tuple]:
    """Candidates holding the phrases' words, pages of them checked against their bodies."""
    found: list[tuple] = []
    examined, page = 0, max(limit, 100)
    while len(found) < limit and examined < MAX_CANDIDATES:
        rows = conn.execute(statement, {**params, "limit": page}).fetchall()
        if not rows:
            break
        examined += len(rows)
        bodies = {e.position: e.body for e in db.store.get_positions([r[0] for r in rows])}
        found += [r for r in rows if r[0] in bodies and holds_phrases(bodies[r[0]], phrases)]
        params = {**params, "after": rows[-1][0]}
        if len(rows) < page:
            break
    return found[:limit]
