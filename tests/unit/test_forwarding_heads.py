"""The head index: each key's oldest held delivery, which is all the scheduler needs."""

from __future__ import annotations

import random

from forwarding import plan
from forwarding.heads import HeadIndex
from store.forwarding import PENDING, Item


def oldest_per_key(held: dict[int, str]) -> list[int]:
    first: dict[str, int] = {}
    for position in sorted(held):
        first.setdefault(held[position], position)
    return sorted(first.values())


def test_heads_follow_every_add_and_discard_in_any_order():
    rng = random.Random(18)
    held: dict[int, str] = {}
    index = HeadIndex()
    for _ in range(3000):
        position = rng.randrange(1, 400)
        if rng.random() < 0.55:
            key = f"k{position % 37}"  # a position keeps its key, as an event does
            index.add(position, key)
            held.setdefault(position, key)
        else:
            index.discard(position)
            held.pop(position, None)
        assert index.heads == oldest_per_key(held)
        assert len(index) == len(held)
    rebuilt = HeadIndex(held.items())
    assert rebuilt.heads == oldest_per_key(held)


def test_planning_over_the_heads_is_planning_over_the_whole_window():
    rng = random.Random(6)
    for _ in range(200):
        window = {}
        for position in sorted(rng.sample(range(1, 300), rng.randrange(1, 120))):
            due = rng.choice([0, 0, 0, 5_000])
            window[position] = Item(
                "d", position, f"e{position}", f"k{rng.randrange(15)}", PENDING, 0, due, None
            )
        busy = rng.sample(sorted(window), min(len(window), rng.randrange(0, 6)))
        in_flight = {p: window[p].key for p in busy[: len(busy) // 2]}
        settling = {p: window[p].key for p in busy[len(busy) // 2 :]}
        index = HeadIndex((p, item.key) for p, item in window.items())
        plans = [
            plan(
                pending,
                now_ms=1_000,
                in_flight=in_flight,
                settling=settling,
                max_in_flight=8,
                in_order=True,
            )
            for pending in (window.values(), (window[p] for p in index.heads))
        ]
        assert plans[0] == plans[1]
