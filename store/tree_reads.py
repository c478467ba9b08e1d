"""The tree's read side both backends share: roots and proofs over their stored hashes.

A backend supplies `_query(sql, params)` (rows of one read), the placeholder its driver
takes (`_mark`: `?` or `%s`), `display_name` and `last_position()`; the hashes and
leaves are read here, in SQL both backends accept. Stored hashes never change once
committed, and those of every position up to the head are committed with it, so reading
the head first and the hashes after needs no snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .contract import Leaf, StoreCorrupt, clamp_position
from .tlog.hashing import erased_leaf
from .tlog.tree import prove_record, prove_tree, tree_hash

HASHES_PER_READ = 500  # under SQLite's limit on the parameters of one statement


class TreeReads:
    """`tree_head`, `tree_root`, `inclusion_proof` and `consistency_proof` of the contract."""

    # the backend's
    _mark: str
    _query: Callable[..., list[tuple]]
    display_name: str
    last_position: Callable[[], int]

    def _read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """The stored tree hashes at `indexes`, in that order; StoreCorrupt if one lacks."""
        found: dict[int, bytes] = {}
        wanted = sorted(set(indexes))
        for start in range(0, len(wanted), HASHES_PER_READ):
            chunk = wanted[start : start + HASHES_PER_READ]
            marks = ",".join([self._mark] * len(chunk))
            found.update(
                self._query(f"SELECT idx, hash FROM tree_hashes WHERE idx IN ({marks})", chunk)
            )
        missing = [i for i in indexes if i not in found]
        if missing:
            raise StoreCorrupt(f"the tree lacks stored hashes {missing[:5]} of {self.display_name}")
        return [found[i] for i in indexes]

    def leaf(self, position: int) -> Leaf | None:
        """The leaf's fields, from the event at `position`; None when there is none.

        A removed body's leaf takes the SHA-256 its erasure recorded.
        """
        rows = self._query(
            "SELECT e.id, e.type, e.received_at, e.body, x.body_sha256 FROM events AS e"
            " LEFT JOIN erased_bodies AS x ON x.position = e.position"
            f" WHERE e.position = {self._mark}",
            (clamp_position(position),),
        )
        return erased_leaf(*rows[0]) if rows else None

    def _within_head(self, size: int) -> None:
        head = self.last_position()
        if not 0 <= size <= head:
            raise ValueError(f"no tree of {size} events: the log holds {head}")

    def tree_head(self) -> tuple[int, bytes]:
        """(size, root) over every committed event; the empty log's root is SHA-256("")."""
        size = self.last_position()
        return size, tree_hash(size, self._read_hashes)

    def tree_root(self, size: int) -> bytes:
        """The root of the first `size` events; ValueError past the head."""
        self._within_head(size)
        return tree_hash(size, self._read_hashes)

    def inclusion_proof(self, position: int, tree_size: int) -> list[bytes]:
        """The audit path of `position` in the tree of `tree_size`, leaf to root."""
        self._within_head(tree_size)
        if not 1 <= position <= tree_size:
            raise ValueError(f"position {position} is not in a tree of {tree_size}")
        return prove_record(tree_size, position - 1, self._read_hashes)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The consistency proof from the tree of `old_size` to that of `new_size`."""
        self._within_head(new_size)
        if not 1 <= old_size <= new_size:
            raise ValueError(f"no consistency proof from {old_size} to {new_size} events")
        return prove_tree(new_size, old_size, self._read_hashes)
