"""`verify` of an intact SQLite log in bulk: whole batches hashed at once, no loop per event.

`store/verify.py` checks one row after another, ~7 µs per event in Python. Here each
aligned batch of 2^BLOCK_LEVEL positions is read in one statement, and every SHA-256 of
the batch (bodies, chain links, leaves, interior nodes level by level) and every leaf's
encoding is computed by `map` over the batch's columns, so the interpreter runs no
bytecode per event; the computed tree hashes go back as one blob, in the order they
are stored, for one statement to compare with the batch's stored hashes. What is left
is mostly hashlib's cost per call (~0.35 µs for a short message, four per event) and
reading the rows. Each chain link is checked against the stored link before it,
which, all links holding, is the same as recomputing the chain from GENESIS.

It only says "intact": at the first thing that does not check out (a gap, a column of
the wrong kind, an empty body without its erasure, a link or a tree hash that differs,
a hash past the end) it returns None, and the caller runs the row-by-row check, which
names the first bad position and says what is wrong, as it always did.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from hashlib import sha256
from itertools import chain as chained
from itertools import repeat
from operator import methodcaller
from struct import Struct
from struct import error as StructError
from typing import NamedTuple

from ..contract import GENESIS, VerifyReport
from ..tlog.tree import completed_levels, stored_hash_count, stored_hash_index

Query = Callable[[str, Sequence], list[tuple]]

# Positions per batch, a power of two: batches start at a multiple of it, so every
# subtree below level BLOCK_LEVEL lies whole in one batch.
BLOCK_LEVEL = 14
# From this many events on, two processes share the check (`bulk_verify`).
PARALLEL_FROM = 1 << 17

# received_at is NULL where a column is not of the kind `leaf_bytes` takes: packing it
# then fails, and the row-by-row check says why.
ROWS = (
    "SELECT chain, body, CAST(id AS BLOB), CAST(type AS BLOB),"
    " CASE WHEN typeof(id) = 'text' AND typeof(type) = 'text' AND typeof(body) = 'blob'"
    " AND typeof(received_at) = 'integer' THEN received_at END"
    " FROM events WHERE position > ? AND position <= ? ORDER BY position"
)
ERASED = "SELECT position, body_sha256 FROM erased_bodies WHERE position > ? AND position <= ?"
# How many of a batch's stored hashes there are, and how many differ from the computed
# ones (?3, laid end to end in index order); a hash stored as text differs too.
HASHES = (
    "SELECT count(*), count(*) FILTER (WHERE hash IS NOT substr(?3, (idx - ?1) * 32 + 1, 32))"
    " FROM tree_hashes WHERE idx >= ?1 AND idx < ?2"
)
HASH = "SELECT hash FROM tree_hashes WHERE idx = ?"

_digest = methodcaller("digest")
_join = b"".join
_u64 = Struct(">Q").pack
_u16 = Struct(">H").pack


def _hashes(parts) -> list[bytes]:
    """SHA-256 of each tuple of parts, joined."""
    return list(map(_digest, map(sha256, map(_join, parts))))


def _parents(level: list[bytes]) -> list[bytes]:
    """The complete parents of one tree level: SHA-256(0x01 ‖ left ‖ right) per pair."""
    return _hashes(zip(repeat(b"\x01"), level[0::2], level[1::2]))


@lru_cache(maxsize=4)
def _stored_order(count: int) -> list[int]:
    """The nodes of a batch of `count` leaves in the order their hashes are stored, as
    indexes into the batch's levels laid end to end (leaves, then level 1, ...).

    Record r's leaf is stored first, then each subtree it completes (store/tlog/tree.py);
    the same for every aligned batch of that size.
    """
    offsets, total, k = [], 0, 0
    while count >> k:
        offsets.append(total)
        total += count >> k
        k += 1
    order = []
    for r in range(count):
        order.append(r)
        order.extend(offsets[i] + ((r + 1) >> i) - 1 for i in range(1, completed_levels(r) + 1))
    return order


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Hold the cyclic collector while a batch's rows (tuples, ~16k a batch) come and go:
    it would scan them again and again (~7 % of the check's CPU) and find no cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Span(NamedTuple):
    """What a run of whole batches checked: up to which position, the chain there, and
    the roots of its whole batches (the tree above them is checked once, at the end)."""

    end: int
    chain: bytes
    tops: list[bytes]


def bulk_verify(
    query: Query,
    *,
    block_level: int = BLOCK_LEVEL,
    path: str | None = None,
    timeout: float = 5.0,
    parallel_from: int = PARALLEL_FROM,
) -> VerifyReport | None:
    """The report of a log that checks out in full; None at the first sign it does not.

    With `path` (the log's file) and at least `parallel_from` events, the later half is
    checked by a second process meanwhile (the hashing holds the GIL): two cores, half
    the time.
    """
    ((head,),) = query("SELECT coalesce(max(position), 0) FROM events", ())
    split = (head // 2) >> block_level << block_level
    if path is None or head < parallel_from or not split:
        span = check_batches(query, 0, None, block_level)
    else:
        span = _in_two(query, path, timeout, split, block_level)
    if span is None or not _higher_levels_hold(query, span.tops, block_level):
        return None
    # Hashes or events past the end: the row-by-row check names them.
    if query("SELECT 1 FROM tree_hashes WHERE idx >= ? LIMIT 1", (stored_hash_count(span.end),)):
        return None
    if query("SELECT 1 FROM events WHERE position > ? LIMIT 1", (span.end,)):
        return None
    return VerifyReport(True, span.end, None, None, span.chain)


def _in_two(query: Query, path: str, timeout: float, split: int, block_level: int) -> Span | None:
    """Positions up to `split` here, the rest in a child process at the same time.

    The child is `python -m store.sqlite.bulk_verify` (not multiprocessing, whose spawn
    would import the caller's main module again); without one it is checked here.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])  # holds the `store` package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    args = [path, repr(timeout), str(split), str(block_level)]
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", __name__, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    except OSError:
        child = None
    try:
        first = check_batches(query, 0, split, block_level)
        if first is None or first.end != split:
            return None
        second = _read_span(child.communicate()[0]) if child is not None else None
        if child is None or child.returncode != 0:
            second = check_batches(query, split, None, block_level)
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
    if second is None:
        return None
    return Span(second.end, second.chain, first.tops + second.tops)


def _read_span(out: bytes) -> Span | None:
    """A child's answer: "none", or the end, the chain and the tops, hex, one a line."""
    lines = out.decode().split()
    if not lines or lines[0] == "none":
        return None
    return Span(int(lines[0]), bytes.fromhex(lines[1]), [bytes.fromhex(h) for h in lines[2:]])


def check_file(path: str, timeout: float, start: int, block_level: int) -> Span | None:
    """`check_batches` from `start` to the end, on a connection of its own (a child's)."""
    from .conn import connect

    conn = connect(path, timeout)
    try:
        conn.execute("PRAGMA query_only=ON")
        return check_batches(
            lambda sql, params: conn.execute(sql, params).fetchall(), start, None, block_level
        )
    finally:
        conn.close()


def check_batches(query: Query, start: int, stop: int | None, block_level: int) -> Span | None:
    """Check whole batches from position `start` (a multiple of the batch) to `stop` or
    the end; each first chain link against the stored link before it. None: not intact."""
    with _no_cyclic_gc():
        return _check_batches(query, start, stop, block_level)


def _check_batches(query: Query, start: int, stop: int | None, block_level: int) -> Span | None:
    block = 1 << block_level
    chain, tops = GENESIS, []
    if start:
        found = query("SELECT chain FROM events WHERE position = ?", (start,))
        if not found:
            return None
        ((chain,),) = found
    while stop is None or start < stop:
        rows = query(ROWS, (start, start + block))
        count = len(rows)
        if not count:
            break
        # Positions are distinct integers: a full batch holds every one of its own. A
        # short one ends the check; a gap in it leaves rows past that end (`bulk_verify`).
        chains, bodies, ids, types, received = zip(*rows)
        del rows
        try:
            digests = list(map(_digest, map(sha256, bodies)))
        except TypeError:  # a body stored as text
            return None
        if b"" in bodies:  # pruned or erased: the recorded hash stands in for the body
            recorded = dict(query(ERASED, (start, start + count)))
            for i, body in enumerate(bodies):
                if not body:
                    if start + i + 1 not in recorded:
                        return None
                    digests[i] = bytes(recorded[start + i + 1])
        if tuple(_hashes(zip(chained((chain,), chains), digests, ids))) != chains:
            return None
        # Each leaf after 0x00: the body hash, received_at, then the id and the type,
        # each after its length (store/tlog/hashing.py).
        leaves = zip(
            repeat(b"\x00"),
            digests,
            map(_u64, received),
            map(_u16, map(len, ids)),
            ids,
            map(_u16, map(len, types)),
            types,
        )
        try:
            level = _hashes(leaves)
        except StructError:  # a NULL received_at (see ROWS), a length past 65535
            return None
        nodes = level
        while len(level) > 1:
            level = _parents(level)
            nodes = nodes + level
        first, stored = stored_hash_index(0, start), stored_hash_count(count)
        computed = _join(map(nodes.__getitem__, _stored_order(count)))
        if query(HASHES, (first, first + stored, computed)) != [(stored, 0)]:
            return None
        chain = chains[-1]
        start += count
        if count < block:
            break
        tops.append(level[0])
    return Span(start, chain, tops)


def _higher_levels_hold(query: Query, tops: list[bytes], block_level: int) -> bool:
    """The stored hashes above the batches' roots equal those computed from them."""
    level, k = tops, block_level
    while len(level) > 1:
        level, k = _parents(level), k + 1
        for j, want in enumerate(level):
            if query(HASH, (stored_hash_index(k, j),)) != [(want,)]:
                return False
    return True


if __name__ == "__main__":  # the child of `_in_two`: PATH TIMEOUT START BLOCK_LEVEL
    import sys

    found = check_file(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    if found is None:
        print("none")
    else:
        print(found.end, found.chain.hex(), *(top.hex() for top in found.tops), sep="\n")
