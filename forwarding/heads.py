"""The oldest pending delivery of each key in a forwarder's window, kept in position order.

With order per key, the scheduler only ever starts the oldest pending delivery of a key
(`scheduler.plan`: a later one is skipped while an older one of its key is pending).
Handing it only those heads gives the same plan without walking past every later
delivery of a busy key: a window of 1,000 deliveries over ~400 keys was walked after
every answer, about a third of the forwarder's own CPU per event. The index is updated
as deliveries enter and leave the window, in O(keys) memory moves at worst.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable


class HeadIndex:
    """Positions per key, and each key's lowest position in one sorted list."""

    def __init__(self, entries: Iterable[tuple[int, str]] = ()):
        """`entries`: (position, key) of the deliveries held, in any order."""
        self._keys: dict[int, str] = {}
        self._by_key: dict[str, list[int]] = {}
        self.heads: list[int] = []  # each key's lowest position, ascending
        for position, key in sorted(entries):
            self._keys[position] = key
            self._by_key.setdefault(key, []).append(position)
        self.heads = sorted(positions[0] for positions in self._by_key.values())

    def __len__(self) -> int:
        return len(self._keys)

    def held(self, key: str) -> int:
        """How many deliveries of `key` are held."""
        return len(self._by_key.get(key, ()))

    def add(self, position: int, key: str) -> None:
        """Hold `position` of `key` (nothing changes when it is held already)."""
        if position in self._keys:
            return
        self._keys[position] = key
        positions = self._by_key.get(key)
        if positions is None:
            self._by_key[key] = [position]
            insort(self.heads, position)
            return
        if position > positions[-1]:  # the usual case: a newer event of a held key
            positions.append(position)
            return
        old_head = positions[0]
        insort(positions, position)
        if positions[0] != old_head:
            self._remove_head(old_head)
            insort(self.heads, position)

    def discard(self, position: int) -> None:
        """Stop holding `position`; the next position of its key becomes its head."""
        key = self._keys.pop(position, None)
        if key is None:
            return
        positions = self._by_key[key]
        index = bisect_left(positions, position)
        del positions[index]
        if index == 0:
            self._remove_head(position)
            if positions:
                insort(self.heads, positions[0])
            else:
                del self._by_key[key]

    def _remove_head(self, position: int) -> None:
        del self.heads[bisect_left(self.heads, position)]
