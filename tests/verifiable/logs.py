"""Random logs for the tree tests: reproducible from a seed, appended in random groups."""

from __future__ import annotations

import random

from store import EventStore, NewEvent
from store.encoding import decode_time

TYPES = ("upload.pre-transform.success", "video.transformation.ready", "file.deleted", "tipo.ñandú")


def random_events(count: int, seed: int) -> list[NewEvent]:
    """`count` events with varied ids, types, bodies and received_at times."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        event_id = f"evt-{seed}-{i}-" + "".join(
            rng.choice("abcxyzé€0") for _ in range(rng.randint(0, 12))
        )
        body = f'{{"n":{i},"pad":"{"x" * rng.randint(0, 300)}"}}'.encode()
        received = decode_time(1_700_000_000_000 + i * 1000 + rng.randint(0, 999))
        events.append(
            NewEvent(
                event_id,
                rng.choice(TYPES),
                "2024-01-02T03:04:05.678Z",
                body,
                "standard-webhooks",
                received,
            )
        )
    return events


def fill(store: EventStore, events: list[NewEvent], seed: int) -> None:
    """Append `events` in random groups of 1 to 400 (each group one commit)."""
    rng = random.Random(seed)
    start = 0
    while start < len(events):
        end = min(len(events), start + rng.randint(1, 400))
        store.append_many(events[start:end])
        start = end
