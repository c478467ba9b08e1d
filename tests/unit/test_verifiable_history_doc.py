"""The worked example of docs/verifiable-history.md, recomputed (values copied from it)."""

from __future__ import annotations

import base64
from hashlib import sha256
from pathlib import Path

from store import Leaf
from store.tlog import format_checkpoint, leaf_bytes, leaf_hash, node_hash, parse_signer, sign_note
from store.tlog.tree import Frontier

EVENTS = [
    ("evt-1", "upload.pre-transform.success", 1704164645678),
    ("evt-2", "file.deleted", 1704164645679),
    ("evt-3", "video.transformation.ready", 1704164646000),
]
LEAF_HASHES = [
    "18e94ac0508843daf4f9f1ffadd84deacee4a7a82b3b59da9e80c66e805a71a1",
    "2b350f658e24f43879d955716d2e92a07a9a794358de1796b87fba47d9439c03",
    "ebd90abdfc74dd55f7a380f3ecab8e5a91013ea585d814b9adc92ee01ac76fd3",
]
ROOT = "5ec4a1b39280205bb466c5c14b7990e9fb12d41908a3dff7001e3bb88c084d55"
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
SIGNATURE = (
    "x08gozO5SpUBuIHxySkqWJAxyQdv04zI3JzxcKeHmVV5i8uO110LHvQkkekFqstK45or4QuyhihfdB2geRmQwZqHJA0="
)


def leaves() -> list[Leaf]:
    return [
        Leaf(i, t, ms, sha256(f'{{"id":"{i}","type":"{t}"}}'.encode()).digest())
        for i, t, ms in EVENTS
    ]


def test_the_worked_examples_leaf_bytes_hashes_root_and_checkpoint():
    first = leaf_bytes(leaves()[0])
    assert first.hex() == (
        "afbbe042468d416e3587c275f51b08065d7cd68a6859e99ff97dac69d2e1ab24"
        "0000018cc820db2e" + "0005" + "6576742d31" + "001c"
        "75706c6f61642e7072652d7472616e73666f726d2e73756363657373"
    )
    hashes = [leaf_hash(leaf) for leaf in leaves()]
    assert [h.hex() for h in hashes] == LEAF_HASHES
    frontier = Frontier()
    for h in hashes:
        frontier.append(h)
    assert frontier.root().hex() == ROOT == node_hash(node_hash(*hashes[:2]), hashes[2]).hex()
    root_b64 = base64.b64encode(bytes.fromhex(ROOT)).decode()
    note = sign_note(format_checkpoint("PeterNeumann", 3, bytes.fromhex(ROOT)), parse_signer(SKEY))
    assert note.decode() == f"PeterNeumann\n3\n{root_b64}\n\n— PeterNeumann {SIGNATURE}\n"
    doc = (Path(__file__).parents[2] / "docs" / "verifiable-history.md").read_text(encoding="utf-8")
    assert SIGNATURE in doc and ROOT in doc and all(h in doc for h in LEAF_HASHES)
