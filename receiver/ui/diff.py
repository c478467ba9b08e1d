"""Two bodies side by side, the lines that differ marked: the event page's conflicts."""

from __future__ import annotations

import difflib
from typing import NamedTuple

import orjson


class Line(NamedTuple):
    text: str
    differs: bool


def _lines(body: bytes) -> list[str]:
    """Pretty-printed JSON when it parses (bodies often differ in one field of one
    line), else the text as received."""
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode().splitlines()
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace").splitlines()


def side_by_side(stored: bytes, other: bytes) -> tuple[list[Line], list[Line]]:
    """Each body's lines, marked where they are not part of the longest common run of
    lines (difflib's matching blocks), so an inserted line marks only itself. Bodies
    that differ only in formatting (whitespace, key order) have no line marked."""
    left, right = _lines(stored), _lines(other)
    same_left: set[int] = set()
    same_right: set[int] = set()
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for block in matcher.get_matching_blocks():
        same_left.update(range(block.a, block.a + block.size))
        same_right.update(range(block.b, block.b + block.size))
    return (
        [Line(t, i not in same_left) for i, t in enumerate(left)],
        [Line(t, i not in same_right) for i, t in enumerate(right)],
    )
