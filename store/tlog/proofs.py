"""Proofs as JSON an auditor can check without the database, and their checker.

`event_proof` and `consistency_proof` read a store through the contract (for the CLI
and HTTP routes to call); `check_proof` and `check_consistency` need only the proof,
a verifier key and, optionally, the body. Hashes are standard base64.
"""

from __future__ import annotations

import base64
import binascii
from hashlib import sha256
from typing import TYPE_CHECKING

from ..encoding import decode_time
from .checkpoint import CheckpointError, format_checkpoint, parse_checkpoint
from .hashing import leaf_hash
from .note import NoteError, Signer, open_note, parse_verifier, sign_note
from .tree import ProofError, check_record, check_tree

if TYPE_CHECKING:
    from ..contract import EventStore

from ..contract import Leaf


class EventNotInLog(LookupError):
    """`event_proof` of an id the log does not hold."""


class ProofCheckFailed(Exception):
    """A proof that does not hold; `check` names which check failed.

    Checks: "format", "key", "signature", "checkpoint", "old-checkpoint", "leaf",
    "path", "body".
    """

    def __init__(self, check: str, message: str):
        super().__init__(f"{check}: {message}")
        self.check = check
        self.message = message


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object, what: str) -> bytes:
    try:
        data = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise ProofCheckFailed("format", f"{what} is not base64") from None
    if len(data) != 32:
        raise ProofCheckFailed("format", f"{what} is not a 32-byte hash")
    return data


def note_text(note: bytes) -> str:
    """The text of a signed note, unverified (to read the size a proof is made against)."""
    split = note.rfind(b"\n\n")
    return (note[: split + 1] if split >= 0 else note).decode("utf-8")


def signed_checkpoint(store: EventStore, origin: str, signer: Signer) -> bytes:
    """A signed note of the store's current tree head (not kept: see `add_checkpoint`)."""
    size, root = store.tree_head()
    return sign_note(format_checkpoint(origin, size, root), signer)


def event_proof(store: EventStore, event_id: str, checkpoint: bytes) -> dict:
    """The inclusion proof of one event in the tree `checkpoint` (a signed note) names.

    Raises EventNotInLog (a LookupError) when the id is not in the log, ProofError when the event is
    newer than the checkpoint or the log's tree of that size is not the checkpoint's.
    """
    head = parse_checkpoint(note_text(checkpoint))
    event = store.get(event_id)
    if event is None:
        raise EventNotInLog(f"no event {event_id!r} in the log")
    if event.position > head.size:
        raise ProofError(
            f"event {event_id} (position {event.position}) is newer than the checkpoint ({head.size})"
        )
    if store.tree_root(head.size) != head.root:
        raise ProofError(f"the log's tree of {head.size} events is not the checkpoint's")
    leaf = store.leaf(event.position)
    assert leaf is not None
    return {
        "leaf_index": event.position - 1,
        "leaf_hash": _b64(leaf_hash(leaf)),
        "tree_size": head.size,
        "root": _b64(head.root),
        "path": [_b64(h) for h in store.inclusion_proof(event.position, head.size)],
        "checkpoint": checkpoint.decode("utf-8"),
        "event": {
            "position": event.position,
            "id": leaf.id,
            "type": leaf.type,
            "received_at": decode_time(leaf.received_at_ms),
            "received_at_ms": leaf.received_at_ms,
            "body_sha256": _b64(leaf.body_sha256),
        },
    }


def consistency_proof(store: EventStore, old_size: int, checkpoint: bytes) -> dict:
    """The proof that the tree `checkpoint` names extends the log's tree of `old_size` events."""
    head = parse_checkpoint(note_text(checkpoint))
    if store.tree_root(head.size) != head.root:
        raise ProofError(f"the log's tree of {head.size} events is not the checkpoint's")
    return {
        "old_size": old_size,
        "old_root": _b64(store.tree_root(old_size)),
        "tree_size": head.size,
        "root": _b64(head.root),
        "path": [_b64(h) for h in store.consistency_proof(old_size, head.size)],
        "checkpoint": checkpoint.decode("utf-8"),
    }


def _signed_head(proof: dict, verifier_key: str) -> tuple[int, bytes]:
    """The (size, root) of the proof's checkpoint once its signature is checked."""
    try:
        verifier = parse_verifier(verifier_key)
    except NoteError as exc:
        raise ProofCheckFailed("key", str(exc)) from None
    try:
        text = open_note(str(proof["checkpoint"]).encode("utf-8"), verifier)
    except NoteError as exc:
        raise ProofCheckFailed("signature", str(exc)) from None
    try:
        head = parse_checkpoint(text)
    except CheckpointError as exc:
        raise ProofCheckFailed("checkpoint", str(exc)) from None
    if head.origin != verifier.name:
        raise ProofCheckFailed(
            "checkpoint", f"the checkpoint's origin {head.origin!r} is not the key's name"
        )
    if (head.size, head.root) != (proof["tree_size"], _unb64(proof["root"], "root")):
        raise ProofCheckFailed(
            "checkpoint", "the proof's tree_size and root are not the signed checkpoint's"
        )
    return head.size, head.root


def check_proof(proof: dict, verifier_key: str, body: bytes | None = None) -> None:
    """Check an event proof or a consistency proof offline; ProofCheckFailed names the failed check.

    Event proof: the checkpoint's signature, that it names the proof's tree, the leaf
    hash recomputed from the event's fields, the audit path to the root and (with
    `body`) the body's SHA-256. Consistency proof: signature, checkpoint, and that
    the path leads from (old_size, old_root) to the signed root.
    """
    if not isinstance(proof, dict):
        raise ProofCheckFailed("format", "a proof is a JSON object")
    try:
        size, root = _signed_head(proof, verifier_key)
        path = [_unb64(h, "a path hash") for h in proof["path"]]
        if "old_size" in proof:
            old_root = _unb64(proof["old_root"], "old_root")
            try:
                check_tree(path, size, root, int(proof["old_size"]), old_root)
            except ProofError as exc:
                raise ProofCheckFailed("path", str(exc)) from None
            return
        event = proof["event"]
        leaf = Leaf(
            str(event["id"]),
            str(event["type"]),
            int(event["received_at_ms"]),
            _unb64(event["body_sha256"], "event.body_sha256"),
        )
        index = int(proof["leaf_index"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ProofCheckFailed):
            raise
        raise ProofCheckFailed("format", f"not an ikledger proof ({exc!r})") from None
    claimed = _unb64(proof["leaf_hash"], "leaf_hash")
    try:
        recomputed = leaf_hash(leaf)
    except ValueError as exc:
        raise ProofCheckFailed("leaf", str(exc)) from None
    if recomputed != claimed:
        raise ProofCheckFailed("leaf", "the event's fields do not hash to the proof's leaf_hash")
    try:
        check_record(path, size, root, index, claimed)
    except ProofError as exc:
        raise ProofCheckFailed("path", str(exc)) from None
    if body is not None and sha256(body).digest() != leaf.body_sha256:
        raise ProofCheckFailed("body", "these bytes are not the event's body (SHA-256 differs)")


def check_consistency(old_checkpoint: bytes, proof: dict, verifier_key: str) -> None:
    """Check that the log a consistency proof describes extends `old_checkpoint` (signed).

    ProofCheckFailed("old-checkpoint", …) when the old checkpoint is not signed by the
    key or names another tree than the proof's old_size and old_root (a fork).
    """
    try:
        text = open_note(old_checkpoint, parse_verifier(verifier_key))
        old = parse_checkpoint(text)
    except (NoteError, CheckpointError) as exc:
        raise ProofCheckFailed("old-checkpoint", str(exc)) from None
    if "old_size" not in proof:
        raise ProofCheckFailed("format", "not a consistency proof")
    if old.size != proof["old_size"] or old.root != _unb64(proof["old_root"], "old_root"):
        raise ProofCheckFailed(
            "old-checkpoint",
            f"the log's tree of {old.size} events is not the old checkpoint's: the log was rewritten or forked",
        )
    check_proof(proof, verifier_key)
