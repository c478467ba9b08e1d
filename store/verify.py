"""The chain check both backends run: one loop over the stored rows, in position order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .contract import GENESIS, VerifyReport, body_digest, chain_link

# (position, id, stored chain link, body) as each backend reads them
Row = tuple[int, str, bytes, bytes]


def verify_chain(
    read: Callable[[int, int], Sequence[Row]],
    *,
    head: tuple[int, bytes] | None = None,
    batch_size: int = 5000,
) -> VerifyReport:
    """Recompute the chain from GENESIS over `read(after, limit)` batches; name the first bad row.

    `read` returns up to `limit` rows with a position above `after`, in order. With
    `head` (a backend that keeps its head apart from the rows), rows removed from the
    end are caught too. An empty log verifies.
    """
    expected, chain, count, after = 1, GENESIS, 0, 0
    while True:
        rows = read(after, batch_size)
        for position, event_id, stored, body in rows:
            if position != expected:
                problem = (
                    f"position {expected} is missing (next is {position})"
                    if position > expected
                    else f"position {position} is out of sequence"
                )
                return VerifyReport(False, count, expected, problem, chain)
            if not isinstance(body, bytes) or not isinstance(event_id, str):
                # e.g. `body || x'20'` turns a BLOB into TEXT: tampering, not a crash
                problem = f"columns of the wrong type at position {position}"
                return VerifyReport(False, count, position, problem, chain)
            chain = chain_link(chain, event_id, body_digest(body))
            if chain != stored:
                problem = f"chain mismatch at position {position}"
                return VerifyReport(False, count, position, problem, chain)
            expected += 1
            count += 1
        if len(rows) < batch_size:
            break
        after = rows[-1][0]
    if head is not None:
        head_position, head_chain = head
        if count != head_position:
            problem = f"position {expected} is missing (the head is at {head_position})"
            return VerifyReport(False, count, expected, problem, chain)
        if chain != head_chain:
            problem = f"the head's chain differs from the chain at position {count}"
            return VerifyReport(False, count, count or None, problem, chain)
    return VerifyReport(True, count, None, None, chain)
