"""C2SP signed notes with Ed25519 keys, in the formats of Go's `golang.org/x/mod/sumdb/note`.

- Verifier key: `NAME+hex(keyID)+base64(0x01 ‖ public key)`.
- Private key: `PRIVATE+KEY+NAME+hex(keyID)+base64(0x01 ‖ seed)` (as Go's
  `note.GenerateKey` writes it, so `note.NewSigner` reads our key files too).
- keyID = the first 4 bytes of SHA-256(NAME ‖ 0x0A ‖ 0x01 ‖ public key).
- A signed note is its text (ending "\\n"), a blank line, then one line per signature:
  "— NAME base64(keyID ‖ Ed25519 signature of the text)".
"""

from __future__ import annotations

import base64
import binascii
import os
from hashlib import sha256
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 1
SIG_PREFIX = "— "  # an em dash and a space, as in Go's note package


class NoteError(ValueError):
    """A key or note that is malformed, or a signature that does not verify."""


class Signer(NamedTuple):
    name: str
    key_id: bytes  # 4 bytes
    private_key: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


class Verifier(NamedTuple):
    name: str
    key_id: bytes  # 4 bytes
    public_key: Ed25519PublicKey

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def valid_name(name: str) -> bool:
    """Go's rule: non-empty, no whitespace, no '+'."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, encoded_key: bytes) -> bytes:
    """The 4-byte key id of a name and its encoded (algorithm-prefixed) public key."""
    return sha256(name.encode("utf-8") + b"\n" + encoded_key).digest()[:4]


def _raw_public(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def generate_key(name: str) -> tuple[str, str]:
    """A new Ed25519 key for `name`: (private key text, verifier key text)."""
    if not valid_name(name):
        raise NoteError(f"not a key name (no spaces, no '+'): {name!r}")
    private_key = Ed25519PrivateKey.generate()
    return private_key_text(name, private_key), verifier_key_text(name, private_key)


def private_key_text(name: str, private_key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    seed = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    kid = key_id(name, bytes([ALG_ED25519]) + _raw_public(private_key))
    encoded = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
    return f"PRIVATE+KEY+{name}+{kid.hex()}+{encoded}"


def verifier_key_text(name: str, private_key: Ed25519PrivateKey) -> str:
    public = bytes([ALG_ED25519]) + _raw_public(private_key)
    return f"{name}+{key_id(name, public).hex()}+{base64.b64encode(public).decode()}"


def _decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("the key's data is not base64") from None


def parse_signer(text: str) -> Signer:
    """A private key from its text form; NoteError when malformed or inconsistent."""
    parts = text.strip().split("+", 4)  # base64 data may hold '+'
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise NoteError("not a private key (PRIVATE+KEY+NAME+ID+DATA)")
    _, _, name, kid_hex, data = parts
    key = _decode(data)
    if not valid_name(name) or len(kid_hex) != 8:
        raise NoteError("malformed private key")
    if len(key) != 33 or key[0] != ALG_ED25519:
        raise NoteError("not an Ed25519 private key")
    private_key = Ed25519PrivateKey.from_private_bytes(key[1:])
    kid = key_id(name, bytes([ALG_ED25519]) + _raw_public(private_key))
    if kid.hex() != kid_hex.lower():
        raise NoteError("the private key's id does not match its key")
    return Signer(name, kid, private_key)


def parse_verifier(text: str) -> Verifier:
    """A verifier key `NAME+ID+DATA`; NoteError when malformed or inconsistent."""
    parts = text.strip().split("+", 2)  # base64 data may hold '+'
    if len(parts) != 3:
        raise NoteError("not a verifier key (NAME+ID+DATA)")
    name, kid_hex, data = parts
    key = _decode(data)
    if not valid_name(name) or len(kid_hex) != 8:
        raise NoteError("malformed verifier key")
    if len(key) != 33 or key[0] != ALG_ED25519:
        raise NoteError("not an Ed25519 verifier key")
    if key_id(name, key).hex() != kid_hex.lower():
        raise NoteError("the verifier key's id does not match its key")
    return Verifier(name, bytes.fromhex(kid_hex), Ed25519PublicKey.from_public_bytes(key[1:]))


def write_private_key(path: str | os.PathLike, text: str) -> None:
    """Create `path` with mode 0600 and write the key; refuses to replace an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text + "\n")


def sign_note(text: str, signer: Signer) -> bytes:
    """The signed note of `text` (which must end with a newline) by one signer."""
    if not text.endswith("\n"):
        raise NoteError("a note's text must end with a newline")
    if "\n\n" in text or text.startswith("\n"):
        raise NoteError("a note's text may not contain a blank line")
    message = text.encode("utf-8")
    signature = base64.b64encode(signer.key_id + signer.sign(message)).decode()
    return message + f"\n{SIG_PREFIX}{signer.name} {signature}\n".encode()


def open_note(note: bytes, verifier: Verifier) -> str:
    """The text of a signed note, once `verifier` has checked its signature.

    Raises NoteError naming what is wrong: a malformed note, no signature by this key
    (name and key id), or a signature by this key that does not verify.
    """
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("the note is not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in decoded):
        raise NoteError("the note holds control characters")
    split = note.rfind(b"\n\n")
    if split < 0:
        raise NoteError("the note has no signature block")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith(b"\n"):
        raise NoteError("the note's signature block does not end with a newline")
    found = False
    for line in block.decode("utf-8").splitlines():
        if not line.startswith(SIG_PREFIX):
            raise NoteError("a signature line does not start with '— '")
        name, _, encoded = line[len(SIG_PREFIX) :].partition(" ")
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise NoteError("a signature is not base64") from None
        if not valid_name(name) or len(signature) < 5:
            raise NoteError("malformed signature line")
        if name != verifier.name or signature[:4] != verifier.key_id:
            continue  # someone else's signature: not ours to judge
        if not verifier.verify(text, signature[4:]):
            raise NoteError(f"the signature of {name} does not verify: the note was altered")
        found = True
    if not found:
        raise NoteError(
            f"the note is not signed by the key {verifier.name}+{verifier.key_id.hex()}"
        )
    return text.decode("utf-8")
