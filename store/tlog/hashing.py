"""The tree's leaf encoding and RFC 6962 hashes: pure functions over bytes.

A leaf is exactly (big-endian throughout):

    SHA-256(body)          32 bytes
    received_at            8 bytes, epoch milliseconds, unsigned
    len(id)   ‖ id         2 bytes, then the id's UTF-8 bytes
    len(type) ‖ type       2 bytes, then the type's UTF-8 bytes

The body's hash, not the body, is in the leaf, so a body can go (retention, erasure)
while every proof over its leaf still holds. Leaf hash = SHA-256(0x00 ‖ leaf), interior
node = SHA-256(0x01 ‖ left ‖ right), the empty tree's root = SHA-256("") (RFC 6962 §2.1).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

from ..contract import Leaf, body_digest

# SHA-256 through the contract's `body_digest`, which loads hashlib (OpenSSL) on first
# use: opening a store for reading must not pay for it.

HASH_SIZE = 32
EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")


def received_ms(value: int | str) -> int:
    """A stored `received_at` as epoch milliseconds (an int passes through).

    Text must be ISO-8601 with an offset ("…Z" or "+hh:mm"); anything finer than a
    millisecond is cut (floor). Raises ValueError for text that is not such a time.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):  # a stored value of another kind is bad data too
        raise ValueError(f"received_at is not a time: {value!r}")  # noqa: TRY004
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"received_at has no UTC offset: {value!r}")
    return (moment - _EPOCH) // _MS


def _field(text: str, name: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError(f"the {name} is longer than 65535 bytes")
    return _U16.pack(len(data)) + data


def leaf_bytes(leaf: Leaf) -> bytes:
    """The leaf's exact bytes (see the module docstring). ValueError if a field cannot fit."""
    if len(leaf.body_sha256) != HASH_SIZE:
        raise ValueError("body_sha256 must be 32 bytes")
    if not 0 <= leaf.received_at_ms < 2**64:
        raise ValueError(f"received_at {leaf.received_at_ms} ms is outside 0..2^64-1")
    return (
        leaf.body_sha256
        + _U64.pack(leaf.received_at_ms)
        + _field(leaf.id, "id")
        + _field(leaf.type, "type")
    )


def record_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 ‖ data)."""
    return body_digest(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return body_digest(b"\x01" + left + right)


def leaf_hash(leaf: Leaf) -> bytes:
    """The tree's hash of one event's leaf."""
    return record_hash(leaf_bytes(leaf))


def event_leaf(event_id: str, event_type: str, received_at: int | str, body: bytes) -> Leaf:
    """The leaf of an event from its stored columns (received_at as stored: ms or text)."""
    return Leaf(event_id, event_type, received_ms(received_at), body_digest(body))


def erased_leaf(
    event_id: str, event_type: str, received_at: int | str, body: bytes, erased: bytes | None
) -> Leaf:
    """The leaf of an event whose body may be gone: then its recorded SHA-256 (`erased`)."""
    if not body and erased is not None:
        return Leaf(event_id, event_type, received_ms(received_at), bytes(erased))
    return event_leaf(event_id, event_type, received_at, body)
