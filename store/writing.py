"""The writing half of the contract, the same for every backend: through a `GroupWriter`.

A backend hands its writer (`writer.py`) only "commit this group"; the write methods
of the contract, and the rule that nothing is appended after damage was seen, are
written once here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .contract import AppendResult, NewEvent, Rejection, StoreCorrupt
from .lazylog import lazy_logger

if TYPE_CHECKING:
    from .writer import GroupWriter

log = lazy_logger("ikledger.store")


class WritesThroughGroupWriter:
    """The writing half of the contract for a store whose `_writer` is a `GroupWriter`.

    Every backend writes the same way (queue, group, one transaction per group); only
    the `commit` it hands its writer differs, so the write methods live here once.
    Here too lives the rule that nothing is appended after damage was seen: a backend
    passes every `StoreCorrupt` it raises through `_damaged`, and from then on appends
    raise `StoreCorrupt` and refused deliveries are no longer journalled.
    """

    _writer: GroupWriter
    display_name: str
    _damage: str | None = None  # the first StoreCorrupt seen, for the messages after it

    def _damaged(self, error: StoreCorrupt) -> StoreCorrupt:
        """Remember that the log is damaged; returns `error`, for the caller to raise."""
        if self._damage is None:
            self._damage = str(error)
            log.error("%s: appends refused from now on: %s", self.display_name, error)
        return error

    def _refuse_when_damaged(self) -> None:
        if self._damage is not None:
            raise StoreCorrupt(
                f"{self.display_name} is damaged, so nothing more is appended to it "
                f"({self._damage})"
            )

    def append(self, event: NewEvent) -> AppendResult:
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[NewEvent]) -> list[AppendResult]:
        """Append events in order; returns only after they are durable.

        Raises StoreUnavailable when their group could not commit (none stored) or
        did not finish within `timeout` (outcome unknown; a retry is recognised by id),
        and StoreCorrupt, storing nothing, once this store has seen damage.
        """
        self._refuse_when_damaged()
        try:
            return self._writer.append_many(events)
        except StoreCorrupt as exc:
            self._damaged(exc)
            raise

    def check_writable(self, *, max_age: float = 1.0) -> str | None:
        """Why appends would fail now, or None; probes with a real write when in doubt."""
        if self._damage is not None:
            return f"damaged: {self._damage}"
        return self._writer.check_writable(max_age=max_age)

    def record_rejection(self, rejection: Rejection) -> None:
        """Queue a journal row for a refused delivery; dropped (and counted) under flood,
        and dropped once the log is known to be damaged."""
        if self._damage is None:
            self._writer.record_rejection(rejection)

    @property
    def last_write_error(self) -> str | None:
        return self._writer.last_write_error

    @property
    def last_write_error_at(self) -> float | None:
        return self._writer.last_write_error_at

    @property
    def rejections_dropped(self) -> int:
        return self._writer.rejections_dropped
