"""The SQLite store's reads of the delivery journal: deliveries, conflicts, refusals.

`JournalReads` is a part of `SQLiteStore` (`store.py`), which supplies `_query`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..contract import Conflict, Delivery
from ..encoding import decode_time, encode_time
from .rows import JOURNAL_COLUMNS, delivery, stored_delivery


class JournalReads:
    """`conflicts`, `deliveries`, `rejections` and `rejection_counts` of the contract."""

    _query: Callable[..., list[tuple]]  # the store's

    def conflicts(self, event_id: str) -> list[Conflict]:
        """Conflicting redeliveries of `event_id`, oldest first (the redelivery index)."""
        rows = self._query(
            "SELECT seq, received_at, body FROM deliveries WHERE outcome = 'conflict' "
            "AND position = (SELECT position FROM events WHERE id = ?) ORDER BY seq",
            (event_id,),
        )
        return [Conflict(seq, decode_time(at) or "", body) for seq, at, body in rows]

    def deliveries(self, *, event_id: str | None = None, limit: int = 100) -> list[Delivery]:
        """Journal rows, newest first, optionally for one event id.

        A `stored` row's time, status, event id, size and scheme come from its event.
        For one id: its stored row (found by bisection), its redeliveries (indexed by
        position) and the refusals naming it (capped by `rejected_keep`).
        """
        if event_id is None:
            rows = self._query(
                f"SELECT {JOURNAL_COLUMNS} FROM journal ORDER BY seq DESC LIMIT ?", (limit,)
            )
            return [delivery(row) for row in rows]
        found = self._query("SELECT position FROM events WHERE id = ?", (event_id,))
        seqs = [
            seq
            for (seq,) in self._query(
                "SELECT seq FROM deliveries WHERE outcome = 'rejected' AND event_id = ?",
                (event_id,),
            )
        ]
        if found:
            position = found[0][0]
            stored = stored_delivery(self._query, position)
            seqs += [stored] if stored is not None else []
            seqs += [
                seq
                for (seq,) in self._query(
                    "SELECT seq FROM deliveries WHERE outcome != 'stored' AND position = ?",
                    (position,),
                )
            ]
        seqs = sorted(seqs, reverse=True)[:limit]
        if not seqs:
            return []
        rows = self._query(
            f"SELECT {JOURNAL_COLUMNS} FROM journal WHERE seq IN ({','.join('?' * len(seqs))}) "
            "ORDER BY seq DESC",
            seqs,
        )
        return [delivery(row) for row in rows]

    def rejections(
        self, since: str | None = None, until: str | None = None, *, limit: int = 100
    ) -> list[Delivery]:
        """Refused deliveries in [since, until), newest first (index `deliveries_rejected_at`)."""
        where, params = _rejected_range(since, until)
        rows = self._query(
            f"SELECT {JOURNAL_COLUMNS} FROM deliveries INDEXED BY deliveries_rejected_at "
            f"WHERE {where} ORDER BY received_at DESC, seq DESC LIMIT ?",
            (*params, limit),
        )
        return [delivery(row) for row in rows]

    def rejection_counts(
        self, since: str | None = None, until: str | None = None
    ) -> dict[str, int]:
        """Refused deliveries in [since, until) by reason, from the (covering) index alone."""
        where, params = _rejected_range(since, until)
        rows = self._query(
            "SELECT coalesce(reason, ''), count(*) FROM deliveries "
            f"INDEXED BY deliveries_rejected_at WHERE {where} GROUP BY 1 ORDER BY 1",
            params,
        )
        return dict(rows)


def _rejected_range(since: str | None, until: str | None) -> tuple[str, list]:
    """The WHERE clause of refusals received in [since, until), times as stored."""
    where, params = ["outcome = 'rejected'"], []
    for op, moment in ((">=", since), ("<", until)):
        if moment is not None:
            encoded = encode_time(moment)
            if not isinstance(encoded, int):
                raise ValueError(f"not a normalised time: {moment!r}")
            where.append(f"received_at {op} ?")
            params.append(encoded)
    return " AND ".join(where), params
