"""Verifiable history: the Merkle tree's leaves, storage and proofs, signed notes, checkpoints.

Pure functions over bytes (no store, no I/O) except `proofs`, which reads a store
through the contract. The formats are in docs/verifiable-history.md.

Names load on first use: `store.verify` needs only the hashing, and a read-only command
must not import `cryptography` or OpenSSL.
"""

from importlib import import_module

_MODULES = {
    "Checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "EMPTY_ROOT": "hashing",
    "NoteError": "note",
    "ProofError": "tree",
    "Signer": "note",
    "Verifier": "note",
    "check_record": "tree",
    "check_tree": "tree",
    "event_leaf": "hashing",
    "format_checkpoint": "checkpoint",
    "generate_key": "note",
    "leaf_bytes": "hashing",
    "leaf_hash": "hashing",
    "node_hash": "hashing",
    "open_note": "note",
    "parse_checkpoint": "checkpoint",
    "parse_signer": "note",
    "parse_verifier": "note",
    "prove_record": "tree",
    "prove_tree": "tree",
    "received_ms": "hashing",
    "record_hash": "hashing",
    "sign_note": "note",
    "tree_hash": "tree",
    "write_private_key": "note",
}

__all__ = sorted(_MODULES)  # noqa: PLE0605 -- the names __getattr__ gives


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module 'store.tlog' has no attribute {name!r}")
    return getattr(import_module(f".{_MODULES[name]}", __name__), name)
