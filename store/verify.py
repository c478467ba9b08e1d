"""The check both backends run: one loop over the stored rows, in position order.

It recomputes the hash chain and the Merkle tree together, so the first bad position is
named whichever of the two a change broke: the chain covers the id and the body, the
tree's leaf the body's hash, `received_at`, the id and the type. A pruned or erased
body's recorded hash stands in for it; a body gone without such a record is tampering.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .contract import GENESIS, Leaf, VerifyReport, body_digest, chain_link
from .tlog.hashing import leaf_hash, received_ms
from .tlog.tree import Frontier, stored_hash_count, stored_hash_index

# (position, id, stored chain link, body, type, received_at as stored, the recorded
# SHA-256 of an erased body or None) as each backend reads them
Row = tuple[int, str, bytes, bytes, str, int | str, bytes | None]
# stored tree hashes with lo <= index < hi, as (index, hash), in index order
TreeRead = Callable[[int, int], Sequence[tuple[int, bytes]]]


def verify_chain(
    read: Callable[[int, int], Sequence[Row]],
    *,
    tree: TreeRead,
    head: tuple[int, bytes] | None = None,
    batch_size: int = 5000,
) -> VerifyReport:
    """Recompute chain and tree from GENESIS over `read(after, limit)` batches; name the first bad row.

    `read` returns up to `limit` rows with a position above `after`, in order; `tree`
    the stored tree hashes in an index range. With `head` (a backend that keeps its
    head apart from the rows), rows removed from the end are caught too. An empty log
    verifies.
    """
    expected, chain, count, after = 1, GENESIS, 0, 0
    frontier = Frontier()

    def failed(position: int | None, problem: str) -> VerifyReport:
        return VerifyReport(False, count, position, problem, chain)

    while True:
        rows = read(after, batch_size)
        stored = (
            dict(tree(stored_hash_index(0, rows[0][0] - 1), stored_hash_count(rows[-1][0])))
            if rows and rows[0][0] >= 1 and rows[-1][0] >= rows[0][0]
            else {}
        )
        for position, event_id, link, body, event_type, received_at, erased in rows:
            if position != expected:
                problem = (
                    f"position {expected} is missing (next is {position})"
                    if position > expected
                    else f"position {position} is out of sequence"
                )
                return failed(expected, problem)
            if not isinstance(body, bytes) or not isinstance(event_id, str):
                # e.g. `body || x'20'` turns a BLOB into TEXT: tampering, not a crash
                return failed(position, f"columns of the wrong type at position {position}")
            if body:
                digest = body_digest(body)
            elif erased is not None:  # pruned or erased: its recorded hash stands in
                digest = bytes(erased)
            else:
                return failed(
                    position,
                    f"the body of position {position} was removed without a recorded "
                    "erasure: tampering",
                )
            chain = chain_link(chain, event_id, digest)
            if chain != link:
                return failed(position, f"chain mismatch at position {position}")
            problem = _tree_problem(
                frontier, stored, position, event_id, event_type, received_at, digest
            )
            if problem:
                return failed(position, problem)
            expected += 1
            count += 1
        if len(rows) < batch_size:
            break
        after = rows[-1][0]
    if head is not None:
        head_position, head_chain = head
        if count != head_position:
            return failed(
                expected, f"position {expected} is missing (the head is at {head_position})"
            )
        if chain != head_chain:
            problem = f"the head's chain differs from the chain at position {count}"
            return failed(count or None, problem)
    # Hashes stored for a position past the last event: read the tree first, the events
    # after, so an append that commits in between is seen as the event it is.
    beyond = tree(stored_hash_count(count), stored_hash_count(count + 1))
    if beyond and not read(count, 1):
        return failed(
            count + 1, f"the tree holds hashes for position {count + 1}, which is not in the log"
        )
    return VerifyReport(True, count, None, None, chain)


def _tree_problem(
    frontier: Frontier,
    stored: dict[int, bytes],
    position: int,
    event_id: str,
    event_type: object,
    received_at: int | str,
    digest: bytes,
) -> str | None:
    """Append the row's leaf to `frontier`; what is wrong with its stored hashes, or None."""
    if not isinstance(event_type, str):
        return f"columns of the wrong type at position {position}"
    try:
        leaf = leaf_hash(Leaf(event_id, event_type, received_ms(received_at), digest))
    except ValueError as exc:
        return f"no tree leaf for position {position}: {exc}"
    base = stored_hash_index(0, position - 1)
    for offset, want in enumerate(frontier.append(leaf)):
        have = stored.get(base + offset)
        if have is None:
            return f"the tree lacks a hash of position {position}"
        if have != want:
            what = "leaf" if offset == 0 else "subtree hash"
            return f"the tree's {what} differs from the event at position {position}"
    return None
