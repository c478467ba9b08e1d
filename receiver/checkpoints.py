"""Checkpoints and proofs as the receiver uses them: the signing key, fresh and kept
checkpoints, the background checkpointer of `serve`, and the check that today's log
extends an old checkpoint.

The formats and the pure checks live in `store.tlog`; this module only reads the key
file (named by `Config.signing_key`) and the log through the store contract.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from store import EventStore
    from store.tlog import Signer

log = logging.getLogger("ikledger.checkpoints")

# The origin line of an unsigned checkpoint (a signed one carries its key's name).
UNSIGNED_ORIGIN = "ikledger"
KEY_HELP = (
    "checkpoints are unsigned: create a key with `ikledger keys create --origin NAME "
    "--out FILE` and set IKLEDGER_SIGNING_KEY=FILE"
)


class SigningKeyError(Exception):
    """The signing key file cannot be used; the message says why (never the key itself)."""


def load_signer(path: str | os.PathLike) -> Signer:
    """The private key in `path`; refuses a file others may read or that is not a key."""
    from store.tlog import NoteError, parse_signer

    try:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SigningKeyError(
                f"the signing key {os.fspath(path)} may be read by others "
                f"(mode {stat.S_IMODE(mode):o}): chmod 600 it"
            )
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {os.fspath(path)}: {exc.strerror}")
    try:
        return parse_signer(text)
    except NoteError as exc:
        raise SigningKeyError(f"{os.fspath(path)} is not a signing key: {exc}") from None


def fresh_checkpoint(store: EventStore, signer: Signer | None) -> bytes:
    """The checkpoint of the log's tree now: a signed note, or its bare text without a key."""
    from store.tlog import format_checkpoint, sign_note

    size, root = store.tree_head()
    if signer is None:
        return format_checkpoint(UNSIGNED_ORIGIN, size, root).encode()
    return sign_note(format_checkpoint(signer.name, size, root), signer)


def checkpoint_size(note: bytes) -> int:
    """The tree size a kept checkpoint (signed or not) names."""
    from store.tlog.checkpoint import parse_checkpoint  # not `proofs`: no OpenSSL for status

    split = note.rfind(b"\n\n")  # a signed note's text ends before its signatures
    return parse_checkpoint((note[: split + 1] if split >= 0 else note).decode("utf-8")).size


def keep_if_grown(store: EventStore, signer: Signer | None) -> bytes | None:
    """Keep a fresh checkpoint when the log has grown past the last one kept (or none is).

    Returns the checkpoint kept, or None when the last one still names today's tree.
    """
    latest = store.latest_checkpoint()
    note = fresh_checkpoint(store, signer)
    if latest is not None and checkpoint_size(latest) >= checkpoint_size(note):
        return None
    store.add_checkpoint(note)
    return note


class Checkpointer:
    """A thread that keeps a checkpoint every `every` seconds while the log grows, and one
    last when stopped (the shutdown of `serve`). Failures are logged, never raised."""

    def __init__(self, store: EventStore, signer: Signer | None, every: float):
        self.store = store
        self.signer = signer
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ikledger-checkpoints")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, keeping a last checkpoint if the log grew. Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._keep()
        self._keep()

    def _keep(self) -> None:
        try:
            note = keep_if_grown(self.store, self.signer)
        except Exception:  # never let the loop die, nor take the catch-up with it
            log.exception("cannot keep a checkpoint")
            return
        if note is not None:
            log.info("checkpoint kept: %s events", checkpoint_size(note))


def extends_checkpoint(store: EventStore, old_note: bytes, verifier_key: str) -> int:
    """Check that today's log extends the signed checkpoint `old_note`; its size if so.

    Raises `ProofCheckFailed` naming the failed check: "key" (the verifier key),
    "old-checkpoint" (not signed by the key, another origin, a log now shorter, or a
    tree of that size that is not the checkpoint's: rewritten or forked), "path" (the
    RFC 9162 consistency proof from it to today's root does not hold).
    """
    from store.tlog import (
        NoteError,
        ProofError,
        check_tree,
        open_note,
        parse_checkpoint,
        parse_verifier,
    )
    from store.tlog.checkpoint import CheckpointError
    from store.tlog.proofs import ProofCheckFailed

    try:
        verifier = parse_verifier(verifier_key)
    except NoteError as exc:
        raise ProofCheckFailed("key", str(exc)) from None
    try:
        old = parse_checkpoint(open_note(old_note, verifier))
    except (NoteError, CheckpointError) as exc:
        raise ProofCheckFailed("old-checkpoint", str(exc)) from None
    if old.origin != verifier.name:
        raise ProofCheckFailed(
            "old-checkpoint", f"the checkpoint's origin {old.origin!r} is not the key's name"
        )
    size, root = store.tree_head()
    if old.size > size:
        raise ProofCheckFailed(
            "old-checkpoint",
            f"the log holds {size} events, fewer than the checkpoint's {old.size}: "
            "events were removed",
        )
    if store.tree_root(old.size) != old.root:
        raise ProofCheckFailed(
            "old-checkpoint",
            f"the log's tree of {old.size} events is not the checkpoint's: "
            "the log was rewritten or forked",
        )
    try:
        check_tree(store.consistency_proof(old.size, size), size, root, old.size, old.root)
    except ProofError as exc:
        raise ProofCheckFailed("path", str(exc)) from None
    return old.size
