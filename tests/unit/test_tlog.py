"""store/tlog: RFC 6962 test vectors, Go's signed-note vectors, the leaf encoding, key files.

The RFC 6962 vectors are the Certificate Transparency reference tree (leaves, roots of
sizes 0..8, audit paths and consistency proofs), as published in transparency-dev/merkle
`testonly/constants.go` and the CT reference tests; the note vectors are Go's
golang.org/x/mod/sumdb/note `note_test.go` (TestSign, TestOpen), copied here.
"""

from __future__ import annotations

import os
import stat

import pytest

from store import Leaf
from store.tlog import (
    EMPTY_ROOT,
    NoteError,
    ProofError,
    check_record,
    check_tree,
    format_checkpoint,
    generate_key,
    leaf_bytes,
    open_note,
    parse_checkpoint,
    parse_signer,
    parse_verifier,
    record_hash,
    sign_note,
    write_private_key,
)
from store.tlog.tree import Frontier, prove_record, prove_tree, stored_hashes, tree_hash

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [  # (leaf index, tree size, audit path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip
CONSISTENCY = [  # (old size, new size, proof)
    (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip

GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNED = GO_TEXT + (
    "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"


@pytest.fixture
def storage() -> list[bytes]:
    """The reference tree's stored hashes, appended with `stored_hashes`."""
    hashes: list[bytes] = []

    def read(indexes):
        return [hashes[i] for i in indexes]

    for n, data in enumerate(LEAVES):
        hashes.extend(stored_hashes(n, record_hash(data), read))
    return hashes


def test_roots_match_rfc6962_for_every_size(storage):
    read = lambda idx: [storage[i] for i in idx]
    assert [tree_hash(size, read).hex() for size in range(9)] == ROOTS
    frontier = Frontier()
    for size, data in enumerate(LEAVES, 1):
        frontier.append(record_hash(data))
        assert frontier.root().hex() == ROOTS[size]
    assert EMPTY_ROOT.hex() == ROOTS[0]


@pytest.mark.parametrize("index,size,path", INCLUSION)
def test_audit_paths_match_rfc6962(storage, index, size, path):
    read = lambda idx: [storage[i] for i in idx]
    assert [h.hex() for h in prove_record(size, index, read)] == path
    root, leaf = bytes.fromhex(ROOTS[size]), record_hash(LEAVES[index])
    check_record([bytes.fromhex(h) for h in path], size, root, index, leaf)
    with pytest.raises(ProofError):
        check_record([bytes.fromhex(h) for h in path], size, root, index + 1, leaf)
    with pytest.raises(ProofError):
        check_record([bytes.fromhex(h) for h in path[:-1]], size, root, index, leaf)


@pytest.mark.parametrize("old,new,proof", CONSISTENCY)
def test_consistency_proofs_match_rfc6962(storage, old, new, proof):
    read = lambda idx: [storage[i] for i in idx]
    assert [h.hex() for h in prove_tree(new, old, read)] == proof
    hashes = [bytes.fromhex(h) for h in proof]
    check_tree(hashes, new, bytes.fromhex(ROOTS[new]), old, bytes.fromhex(ROOTS[old]))
    with pytest.raises(ProofError):  # another old root: the proof leads to neither
        check_tree(hashes, new, bytes.fromhex(ROOTS[new]), old, bytes.fromhex(ROOTS[old - 1]))


def test_leaf_bytes_are_the_issues_encoding():
    leaf = Leaf("evt-1", "file.deleted", 0x0102030405060708, bytes(range(32)))
    assert leaf_bytes(leaf) == (
        bytes(range(32))
        + bytes.fromhex("0102030405060708")
        + b"\x00\x05evt-1"
        + b"\x00\x0cfile.deleted"
    )
    assert (
        leaf_bytes(leaf._replace(id="é"))[40:43] == b"\x00\x02\xc3"
    )  # UTF-8 length, not characters


def test_signing_matches_gos_note_vector():
    signer = parse_signer(GO_SKEY)
    assert sign_note(GO_TEXT, signer).decode() == GO_SIGNED
    assert open_note(GO_SIGNED.encode(), parse_verifier(GO_VKEY)) == GO_TEXT


def test_a_note_signed_by_another_key_or_altered_is_refused():
    with pytest.raises(NoteError, match="not signed by the key EnochRoot"):
        open_note(GO_SIGNED.encode(), parse_verifier(ENOCH_VKEY))
    altered = GO_SIGNED.replace("problem is", "problem was").encode()
    with pytest.raises(NoteError, match="does not verify"):
        open_note(altered, parse_verifier(GO_VKEY))


def test_generated_keys_are_in_gos_format_and_sign_checkpoints():
    skey, vkey = generate_key("ikledger.example/log")
    assert skey.startswith("PRIVATE+KEY+ikledger.example/log+")
    assert vkey.split("+")[1] == skey.split("+")[3]  # the same key id in both
    text = format_checkpoint("ikledger.example/log", 3, bytes(32))
    assert text == "ikledger.example/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    opened = open_note(sign_note(text, parse_signer(skey)), parse_verifier(vkey))
    assert parse_checkpoint(opened) == ("ikledger.example/log", 3, bytes(32))


def test_a_verifier_key_with_a_wrong_id_is_refused():
    name, _, data = GO_VKEY.split("+")
    with pytest.raises(NoteError, match="id does not match"):
        parse_verifier(f"{name}+{'0' * 8}+{data}")


def test_private_key_file_is_created_0600_and_never_replaced(tmp_path):
    path = tmp_path / "signing.key"
    old = os.umask(0)  # even a permissive umask leaves the key private
    try:
        write_private_key(path, GO_SKEY)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert parse_signer(path.read_text()).name == "PeterNeumann"
    with pytest.raises(FileExistsError):
        write_private_key(path, GO_SKEY)
