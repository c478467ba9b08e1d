"""`verify` of an intact SQLite log in bulk: whole batches hashed at once, no loop per event.

`store/verify.py` checks one row after another, ~7 µs per event in Python. Here each
aligned batch of 2^BLOCK_LEVEL positions is read in one statement, and every SHA-256 of
the batch (bodies, chain links, leaves, interior nodes level by level) and every leaf's
encoding is computed by `map` over the batch's columns, so the interpreter runs no
bytecode per event (about 1.4x less CPU than row by row; the hashing itself is most
of what is left). Each chain link is checked against the stored link before
it, which, all links holding, is the same as recomputing the chain from GENESIS.

It only says "intact": at the first thing that does not check out (a gap, a column of
the wrong kind, an empty body without its erasure, a link or a tree hash that differs,
a hash past the end) it returns None, and the caller runs the row-by-row check, which
names the first bad position and says what is wrong, as it always did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from hashlib import sha256
from itertools import repeat
from operator import add, itemgetter, methodcaller
from struct import Struct

from ..contract import GENESIS, VerifyReport
from ..tlog.tree import stored_hash_count, stored_hash_index

Query = Callable[[str, Sequence], list[tuple]]

# Positions per batch, a power of two: batches start at a multiple of it, so every
# subtree below level BLOCK_LEVEL lies whole in one batch.
BLOCK_LEVEL = 14

ROWS = (
    "SELECT position, chain, body, CAST(id AS BLOB), received_at, CAST(type AS BLOB)"
    " FROM events WHERE position > ? AND position <= ? ORDER BY position"
)
# Rows whose columns are not what `leaf_bytes` takes: the row-by-row check says why.
ODD_ROWS = (
    "SELECT count(*) FROM events WHERE position > ? AND position <= ? AND NOT ("
    "typeof(id) = 'text' AND typeof(type) = 'text' AND typeof(body) = 'blob'"
    " AND typeof(received_at) = 'integer' AND received_at >= 0"
    " AND length(CAST(id AS BLOB)) <= 65535 AND length(CAST(type AS BLOB)) <= 65535)"
)
ERASED = "SELECT position, body_sha256 FROM erased_bodies WHERE position > ? AND position <= ?"
HASHES = "SELECT hash FROM tree_hashes WHERE idx >= ? AND idx < ? ORDER BY idx"

_digest = methodcaller("digest")
_u64 = Struct(">Q").pack
_u16 = Struct(">H").pack
_first = itemgetter(0)


def _hashes(parts) -> list[bytes]:
    return list(map(_digest, map(sha256, parts)))


def _parents(level: list[bytes]) -> list[bytes]:
    """The complete parents of one tree level: SHA-256(0x01 ‖ left ‖ right) per pair."""
    return _hashes(map(add, map(add, repeat(b"\x01"), level[0::2]), level[1::2]))


@cache
def _slots(block_level: int) -> list[list[int]]:
    """Per level k <= block_level, where its j-th node's hash sits among a batch's
    stored hashes, counted from the batch's first (the same for every aligned batch)."""
    slots = []
    for k in range(block_level + 1):
        ends = (((j + 1) << k) - 1 for j in range(1 << (block_level - k)))
        slots.append([2 * r - r.bit_count() + k for r in ends])
    return slots


def bulk_verify(query: Query, *, block_level: int = BLOCK_LEVEL) -> VerifyReport | None:
    """The report of a log that checks out in full; None at the first sign it does not."""
    block = 1 << block_level
    slots = _slots(block_level)
    start, chain, tops = 0, GENESIS, []  # tops: the roots of the whole batches so far
    while True:
        rows = query(ROWS, (start, start + block))
        count = len(rows)
        if not count:
            break
        positions, chains, bodies, ids, received, types = zip(*rows)
        del rows
        if positions[0] != start + 1 or positions[-1] != start + count:
            return None
        if query(ODD_ROWS, (start, start + count)) != [(0,)]:
            return None
        digests = _hashes(bodies)
        if b"" in bodies:  # pruned or erased: the recorded hash stands in for the body
            recorded = dict(query(ERASED, (start, start + count)))
            for i, body in enumerate(bodies):
                if not body:
                    if start + i + 1 not in recorded:
                        return None
                    digests[i] = bytes(recorded[start + i + 1])
        links = _hashes(map(add, map(add, (chain, *chains[:-1]), digests), ids))
        if tuple(links) != chains:
            return None
        # The leaf after its body hash: received_at, then the id and the type, each
        # after its length (store/tlog/hashing.py), built column by column.
        tails = map(add, map(add, map(_u64, received), map(_u16, map(len, ids))), ids)
        tails = map(add, map(add, tails, map(_u16, map(len, types))), types)
        level = _hashes(map(add, map(add, repeat(b"\x00"), digests), tails))
        first = stored_hash_index(0, start)
        stored = list(map(_first, query(HASHES, (first, first + stored_hash_count(count)))))
        for k in range(block_level + 1):
            if k:
                level = _parents(level)
            if not level:
                break
            wanted = slots[k][: len(level)]
            if wanted[-1] >= len(stored) or list(map(stored.__getitem__, wanted)) != level:
                return None
        chain = chains[-1]
        start += count
        if count < block:
            break
        tops.append(level[0])
    if not _higher_levels_hold(query, tops, block_level):
        return None
    # Hashes or events past the end: the row-by-row check names them.
    if query("SELECT 1 FROM tree_hashes WHERE idx >= ? LIMIT 1", (stored_hash_count(start),)):
        return None
    if query("SELECT 1 FROM events WHERE position > ? LIMIT 1", (start,)):
        return None
    return VerifyReport(True, start, None, None, chain)


def _higher_levels_hold(query: Query, tops: list[bytes], block_level: int) -> bool:
    """The stored hashes above the batches' roots equal those computed from them."""
    level, k = tops, block_level
    while len(level) > 1:
        level, k = _parents(level), k + 1
        for j, want in enumerate(level):
            index = stored_hash_index(k, j)
            if query(HASHES, (index, index + 1)) != [(want,)]:
                return False
    return True
