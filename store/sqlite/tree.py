"""The SQLite backend's side of the Merkle tree: the hashes a group commit appends."""

from __future__ import annotations

from collections.abc import Iterable

from ..contract import Leaf
from ..tlog.hashing import leaf_hash, received_ms
from ..tlog.tree import Frontier, frontier_indexes, stored_hash_index


def load_frontier(conn, size: int) -> Frontier:
    """The tree's right edge at `size` events, read from `tree_hashes` (log2(size) rows)."""
    indexes = frontier_indexes(size)
    if not indexes:
        return Frontier()
    marks = ",".join("?" * len(indexes))
    found = dict(conn.execute(f"SELECT idx, hash FROM tree_hashes WHERE idx IN ({marks})", indexes))
    return Frontier(size, [found[i] for i in indexes])


def grow(frontier: Frontier, rows: Iterable[tuple]) -> list[tuple[int, bytes]]:
    """(index, hash) rows to store for events appended in order after `frontier.size`.

    `rows` are (position, id, type, received_at as stored, SHA-256 of the body): the
    group commit has the body's digest already (the chain and duplicates use it).
    Position must be `frontier.size + 1`, then the next, and so on.
    """
    out: list[tuple[int, bytes]] = []
    for position, event_id, event_type, received_at, body_sha256 in rows:
        if position != frontier.size + 1:
            raise ValueError(
                f"the tree has {frontier.size} leaves; position {position} is not next"
            )
        base = stored_hash_index(0, position - 1)
        leaf = leaf_hash(Leaf(event_id, event_type, received_ms(received_at), body_sha256))
        out.extend(enumerate(frontier.append(leaf), base))
    return out
