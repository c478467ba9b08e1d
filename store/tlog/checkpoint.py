"""C2SP tlog-checkpoint bodies: origin line, decimal tree size, base64 root, each ending "\\n"."""

from __future__ import annotations

import base64
import binascii
from typing import NamedTuple

from .hashing import HASH_SIZE


class CheckpointError(ValueError):
    """Text that is not a tlog checkpoint."""


class Checkpoint(NamedTuple):
    origin: str
    size: int
    root: bytes


def format_checkpoint(origin: str, size: int, root: bytes) -> str:
    """The checkpoint's text (the body of the signed note)."""
    if not origin or "\n" in origin:
        raise CheckpointError("the origin must be one non-empty line")
    if size < 0 or len(root) != HASH_SIZE:
        raise CheckpointError("a checkpoint needs a size >= 0 and a 32-byte root")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """The origin, size and root of a checkpoint's text; extension lines are ignored."""
    lines = text.split("\n")
    if len(lines) < 4 or not text.endswith("\n") or not lines[0]:
        raise CheckpointError("a checkpoint is an origin, a size and a root, one a line")
    origin, size_text, root_text = lines[:3]
    if not (size_text.isascii() and size_text.isdigit()) or str(int(size_text)) != size_text:
        raise CheckpointError(f"the checkpoint's size is not a decimal number: {size_text!r}")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        root = b""
    if len(root) != HASH_SIZE:
        raise CheckpointError("the checkpoint's root is not a base64 32-byte hash")
    return Checkpoint(origin, int(size_text), root)
