"""The tree's read side both backends share: roots and proofs over their stored hashes.

A backend supplies `_read_hashes(indexes)` (stored tree hashes by index, in that order)
and `last_position()`. Stored hashes never change once committed, and those of every
position up to the head are committed with it, so reading the head first and the
hashes after needs no snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .tlog.tree import prove_record, prove_tree, tree_hash


class TreeReads:
    """`tree_head`, `tree_root`, `inclusion_proof` and `consistency_proof` of the contract."""

    last_position: Callable[[], int]  # the backend's

    def _read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        raise NotImplementedError

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
