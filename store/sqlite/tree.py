"""The SQLite backend's side of the Merkle tree: the hashes a group commit appends."""

from __future__ import annotations

from collections.abc import Iterable

from ..tlog.hashing import event_leaf, leaf_hash
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

    `rows` are (position, id, type, received_at as stored, body); position must be
    `frontier.size + 1`, then the next, and so on.
    """
    out: list[tuple[int, bytes]] = []
    for position, event_id, event_type, received_at, body in rows:
        if position != frontier.size + 1:
            raise ValueError(
                f"the tree has {frontier.size} leaves; position {position} is not next"
            )
        base = stored_hash_index(0, position - 1)
        leaf = leaf_hash(event_leaf(event_id, event_type, received_at, body))
        out.extend(enumerate(frontier.append(leaf), base))
    return out
