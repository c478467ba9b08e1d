"""Verifiable history: the Merkle tree's leaves, storage and proofs, signed notes, checkpoints.

Pure functions over bytes (no store, no I/O) except `proofs`, which reads a store
through the contract. The formats are in docs/verifiable-history.md.
"""

from .checkpoint import Checkpoint, CheckpointError, format_checkpoint, parse_checkpoint
from .hashing import (
    EMPTY_ROOT,
    event_leaf,
    leaf_bytes,
    leaf_hash,
    node_hash,
    received_ms,
    record_hash,
)
from .note import (
    NoteError,
    Signer,
    Verifier,
    generate_key,
    open_note,
    parse_signer,
    parse_verifier,
    sign_note,
    write_private_key,
)
from .tree import ProofError, check_record, check_tree, prove_record, prove_tree, tree_hash

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "CheckpointError",
    "NoteError",
    "ProofError",
    "Signer",
    "Verifier",
    "check_record",
    "check_tree",
    "event_leaf",
    "format_checkpoint",
    "generate_key",
    "leaf_bytes",
    "leaf_hash",
    "node_hash",
    "open_note",
    "parse_checkpoint",
    "parse_signer",
    "parse_verifier",
    "prove_record",
    "prove_tree",
    "received_ms",
    "record_hash",
    "sign_note",
    "tree_hash",
    "write_private_key",
]
