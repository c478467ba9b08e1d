"""Tree storage and RFC 6962 proofs: Go's `golang.org/x/mod/sumdb/tlog` scheme, in Python.

Storage: every complete subtree's hash is stored once, at the index
`stored_hash_index(level, n)` (the n-th hash of that level, leaves being level 0). The
hashes of record n (its leaf hash, then one per subtree it completes) are contiguous,
so appending a record writes about two hashes and reads at most log2(n) earlier ones.
Proofs read O(log n) stored hashes. Record indexes start at 0 (a position minus one).

A `HashReader` is a function from a list of stored-hash indexes to their hashes, in
the same order. The functions are ports of Go's, which the Go verifier test checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .hashing import EMPTY_ROOT, node_hash

HashReader = Callable[[Sequence[int]], Sequence[bytes]]


class ProofError(ValueError):
    """A proof does not lead from its leaf (or old tree) to the root it claims."""


def _maxpow2(n: int) -> tuple[int, int]:
    """The largest power of two strictly below n (n > 1), and its log2."""
    level = (n - 1).bit_length() - 1
    return 1 << level, level


def stored_hash_index(level: int, n: int) -> int:
    """Where the n-th hash at `level` is stored (Go's StoredHashIndex).

    Go sets n = 2n + 1 `level` times, then sums n, n >> 1, n >> 2, ... down to 1: that
    sum is 2n minus the number of one bits of n.
    """
    n = ((n + 1) << level) - 1
    return 2 * n - n.bit_count() + level


def stored_hash_count(size: int) -> int:
    """How many hashes a tree of `size` records stores."""
    if size == 0:
        return 0
    count = stored_hash_index(0, size - 1) + 1
    n = size - 1
    while n & 1:
        count += 1
        n >>= 1
    return count


def completed_levels(n: int) -> int:
    """How many subtrees record n completes (the trailing one bits of n)."""
    return ((n + 1) & -(n + 1)).bit_length() - 1


def stored_hashes(n: int, leaf: bytes, read: HashReader) -> list[bytes]:
    """The hashes to store for record n with leaf hash `leaf`, from index stored_hash_index(0, n)."""
    m = completed_levels(n)
    indexes = [stored_hash_index(i, (n >> i) - 1) for i in reversed(range(m))]
    old = list(read(indexes)) if indexes else []
    if len(old) != m:
        raise ProofError(f"read {len(old)} hashes for {m} indexes")
    hashes, h = [leaf], leaf
    for i in range(m):
        h = node_hash(old[m - 1 - i], h)
        hashes.append(h)
    return hashes


def _subtree_index(lo: int, hi: int, need: list[int]) -> list[int]:
    while lo < hi:
        k, level = _maxpow2(hi - lo + 1)
        need.append(stored_hash_index(level, lo >> level))
        lo += k
    return need


def _subtree_hash(lo: int, hi: int, hashes: list[bytes]) -> tuple[bytes, list[bytes]]:
    count = 0
    while lo < hi:
        k, _ = _maxpow2(hi - lo + 1)
        count += 1
        lo += k
    h = hashes[count - 1]
    for i in range(count - 2, -1, -1):
        h = node_hash(hashes[i], h)
    return h, hashes[count:]


def _read(read: HashReader, indexes: list[int]) -> list[bytes]:
    hashes = list(read(indexes)) if indexes else []
    if len(hashes) != len(indexes):
        raise ProofError(f"read {len(hashes)} hashes for {len(indexes)} indexes")
    return hashes


def frontier_indexes(size: int) -> list[int]:
    """The stored indexes of the complete subtrees that make up a tree of `size` records."""
    return _subtree_index(0, size, [])


def tree_hash(size: int, read: HashReader) -> bytes:
    """The root of the tree of the first `size` records; EMPTY_ROOT for 0."""
    if size == 0:
        return EMPTY_ROOT
    hashes = _read(read, frontier_indexes(size))
    root, rest = _subtree_hash(0, size, hashes)
    assert not rest
    return root


# -- inclusion (record) proofs -------------------------------------------------------


def _leaf_proof_index(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    if lo + 1 == hi:
        return need
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        _leaf_proof_index(lo, lo + k, n, need)
        _subtree_index(lo + k, hi, need)
    else:
        _subtree_index(lo, lo + k, need)
        _leaf_proof_index(lo + k, hi, n, need)
    return need


def _leaf_proof(lo: int, hi: int, n: int, hashes: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    if lo + 1 == hi:
        return [], hashes
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        proof, hashes = _leaf_proof(lo, lo + k, n, hashes)
        th, hashes = _subtree_hash(lo + k, hi, hashes)
    else:
        th, hashes = _subtree_hash(lo, lo + k, hashes)
        proof, hashes = _leaf_proof(lo + k, hi, n, hashes)
    return [*proof, th], hashes


def prove_record(size: int, n: int, read: HashReader) -> list[bytes]:
    """The RFC 6962 audit path of record n in the tree of `size` records, leaf to root."""
    if not 0 <= n < size:
        raise ValueError(f"record {n} is not in a tree of {size}")
    proof, rest = _leaf_proof(0, size, n, _read(read, _leaf_proof_index(0, size, n, [])))
    assert not rest
    return proof


def _run_record_proof(proof: list[bytes], lo: int, hi: int, n: int, leaf: bytes) -> bytes:
    if lo + 1 == hi:
        if proof:
            raise ProofError("the audit path is longer than the tree is deep")
        return leaf
    if not proof:
        raise ProofError("the audit path is shorter than the tree is deep")
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        return node_hash(_run_record_proof(proof[:-1], lo, lo + k, n, leaf), proof[-1])
    return node_hash(proof[-1], _run_record_proof(proof[:-1], lo + k, hi, n, leaf))


def check_record(proof: Sequence[bytes], size: int, root: bytes, n: int, leaf: bytes) -> None:
    """Raise ProofError unless `proof` leads from leaf hash `leaf` at record n to `root`."""
    if not 0 <= n < size:
        raise ProofError(f"record {n} is not in a tree of {size}")
    if _run_record_proof(list(proof), 0, size, n, leaf) != root:
        raise ProofError(f"the audit path of record {n} does not lead to the root")


# -- consistency (tree) proofs -------------------------------------------------------


def _tree_proof_index(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    if n == hi:
        return need if lo == 0 else _subtree_index(lo, hi, need)
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        _tree_proof_index(lo, lo + k, n, need)
        _subtree_index(lo + k, hi, need)
    else:
        _subtree_index(lo, lo + k, need)
        _tree_proof_index(lo + k, hi, n, need)
    return need


def _tree_proof(lo: int, hi: int, n: int, hashes: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    if n == hi:
        if lo == 0:
            return [], hashes
        th, hashes = _subtree_hash(lo, hi, hashes)
        return [th], hashes
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        proof, hashes = _tree_proof(lo, lo + k, n, hashes)
        th, hashes = _subtree_hash(lo + k, hi, hashes)
    else:
        th, hashes = _subtree_hash(lo, lo + k, hashes)
        proof, hashes = _tree_proof(lo + k, hi, n, hashes)
    return [*proof, th], hashes


def prove_tree(size: int, old_size: int, read: HashReader) -> list[bytes]:
    """The RFC 6962 consistency proof from the tree of `old_size` records to that of `size`."""
    if not 1 <= old_size <= size:
        raise ValueError(f"no consistency proof from {old_size} to {size} records")
    proof, rest = _tree_proof(
        0, size, old_size, _read(read, _tree_proof_index(0, size, old_size, []))
    )
    assert not rest
    return proof


def _run_tree_proof(
    proof: list[bytes], lo: int, hi: int, n: int, old: bytes
) -> tuple[bytes, bytes]:
    if n == hi:
        if lo == 0:
            if proof:
                raise ProofError("the consistency proof is longer than it should be")
            return old, old
        if len(proof) != 1:
            raise ProofError("the consistency proof has the wrong length")
        return proof[0], proof[0]
    if not proof:
        raise ProofError("the consistency proof is shorter than it should be")
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        oh, th = _run_tree_proof(proof[:-1], lo, lo + k, n, old)
        return oh, node_hash(th, proof[-1])
    oh, th = _run_tree_proof(proof[:-1], lo + k, hi, n, old)
    return node_hash(proof[-1], oh), node_hash(proof[-1], th)


def check_tree(
    proof: Sequence[bytes], size: int, root: bytes, old_size: int, old_root: bytes
) -> None:
    """Raise ProofError unless `proof` shows the tree (size, root) extends (old_size, old_root)."""
    if not 1 <= old_size <= size:
        raise ProofError(f"no consistency proof from {old_size} to {size} records")
    old, new = _run_tree_proof(list(proof), 0, size, old_size, old_root)
    if old != old_root:
        raise ProofError(f"the proof does not lead to the old root of {old_size} records")
    if new != root:
        raise ProofError(f"the proof does not lead to the root of {size} records")


class Frontier:
    """The right edge of a growing tree: appends records, yields what to store.

    Used where records are appended in order from a known start (verify, migrations,
    the SQLite group commit): `frontier_indexes(size)` gives what to load first.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()):
        self.size = size
        # The complete subtrees from the left, as (level, hash): the size's one bits,
        # highest first, in the order `frontier_indexes(size)` lists their hashes.
        levels = [b for b in range(size.bit_length() - 1, -1, -1) if size >> b & 1]
        hashes = list(hashes)
        if len(hashes) != len(levels):
            raise ValueError(
                f"a tree of {size} has {len(levels)} frontier hashes, not {len(hashes)}"
            )
        self._stack: list[tuple[int, bytes]] = list(zip(levels, hashes, strict=True))

    def append(self, leaf: bytes) -> list[bytes]:
        """Add record `self.size` with leaf hash `leaf`; returns its stored hashes."""
        hashes, h, level = [leaf], leaf, 0
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            h = node_hash(left, h)
            level += 1
            hashes.append(h)
        self._stack.append((level, h))
        self.size += 1
        return hashes

    def root(self) -> bytes:
        """The root of the tree so far."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h
