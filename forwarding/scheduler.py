"""The pure scheduler: which pending deliveries to attempt now, in which order.

No I/O and no clock of its own: the forwarder hands it the pending deliveries, what is
in flight and the time, and tests drive it with a fake clock.

- **Order per key** (unless `unordered`): only the oldest pending delivery of a key may
  be attempted, and none while another of that key is in flight. A delivery leaves
  "pending" only on a 2xx or when given up, so a later event of a key is first
  attempted after every earlier one succeeded or failed for good. A stuck key blocks
  only itself.
- **Due**: a delivery is attempted at or after its `next_ms`.
- **Capacity**: at most `max_in_flight` attempts at once, oldest positions first. An
  attempt that is answered but not yet journalled (`settling`) holds its delivery and
  its key, not capacity: the next requests go out while the journal commits.
- **Rate**: a token bucket per destination (and one per replay job) of `rate` attempts
  per second, holding at most one second's worth (at least one token).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from store.forwarding import Item


class RateLimiter:
    """A token bucket refilled at `rate` per second; `rate=None` allows everything."""

    def __init__(self, rate: float | None, now_ms: int):
        self.rate = rate
        self.capacity = max(1.0, rate or 0.0)
        self.tokens = self.capacity
        self.stamp = now_ms

    def _refill(self, now_ms: int) -> None:
        if self.rate is not None and now_ms > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now_ms - self.stamp) * self.rate / 1000)
        self.stamp = max(self.stamp, now_ms)

    def available(self, now_ms: int) -> bool:
        if self.rate is None:
            return True
        self._refill(now_ms)
        return self.tokens >= 1.0

    def take(self, now_ms: int) -> None:
        if self.rate is not None:
            self._refill(now_ms)
            self.tokens -= 1.0

    def next_token_ms(self, now_ms: int) -> int:
        """When the next token is there (now, if one is)."""
        if self.available(now_ms):
            return now_ms
        return now_ms + int((1.0 - self.tokens) * 1000 / self.rate) + 1


@dataclass
class Plan:
    """What to attempt now, and when to look again (None: only when something changes)."""

    start: list[Item]
    wake_ms: int | None


def plan(
    pending: Iterable[Item],
    *,
    now_ms: int,
    in_flight: Mapping[int, str],
    max_in_flight: int,
    settling: Mapping[int, str] | None = None,
    ordered: bool = True,
    limiters: Mapping[int | None, RateLimiter] | None = None,
    in_order: bool = False,
) -> Plan:
    """The deliveries to attempt now from `pending`, and the next wake-up.

    `pending` comes in any order, or with `in_order` in position order (not sorted
    again: the forwarder calls this after every answer, over up to `window` items).

    `in_flight` maps the positions being attempted to their keys, `settling` those
    whose attempt is being journalled (they count as in flight for everything but
    capacity). `limiters` has the
    destination's bucket under None and each replay job's under its id; a delivery
    takes a token from the destination's and from its job's (the tokens are taken here).
    """
    limiters = limiters or {}
    settling = settling or {}
    busy = in_flight.keys() | settling.keys()
    # Keys in flight, then each key as its oldest pending delivery is met: a later
    # delivery of a key met is not attempted (called per answer: kept to one set).
    held = set(in_flight.values()) | set(settling.values()) if ordered else set()
    free = max_in_flight - len(in_flight)
    start: list[Item] = []
    wake: int | None = None
    for item in pending if in_order else sorted(pending, key=lambda i: i.position):
        if item.position in busy:
            continue
        if ordered:
            key = item.key
            if key in held:
                continue  # an older delivery of this key is pending or in flight
            held.add(key)
        if item.next_ms > now_ms:
            wake = item.next_ms if wake is None else min(wake, item.next_ms)
            continue
        if free <= 0:
            break  # a finishing attempt wakes the forwarder
        buckets = [limiters[k] for k in {None, item.replay_job} if k in limiters]
        blocked = [b for b in buckets if not b.available(now_ms)]
        if blocked:
            soonest = max(b.next_token_ms(now_ms) for b in blocked)
            wake = soonest if wake is None else min(wake, soonest)
            if limiters.get(None) in blocked:
                break  # the destination's own bucket is empty: nothing else may start
            continue
        for bucket in buckets:
            bucket.take(now_ms)
        start.append(item)
        free -= 1
    return Plan(start, wake)
