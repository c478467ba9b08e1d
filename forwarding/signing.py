"""Signing forwarded deliveries in the Standard Webhooks scheme, and their headers.

The signature is `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}." + body)) over the
exact stored bytes, with a fresh timestamp for every attempt. The key is either

- the destination's own `whsec_…` secret, keyed by the Standard Webhooks rule: the
  bytes the base64 after `whsec_` decodes to (what `standardwebhooks.Webhook` does), or
- without one, the first ImageKit webhook secret keyed exactly as ImageKit keys it:
  the whole secret's UTF-8 bytes, `whsec_` included (see `receiver/signatures.py`), so
  an app verifying ImageKit's deliveries with ImageKit's SDK accepts ours unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from functools import cache
from importlib.metadata import PackageNotFoundError, version

from .errors import ForwardingError

PREFIX = "whsec_"
# The Standard Webhooks spec: secrets of 24 to 64 random bytes.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def destination_key(secret: str) -> bytes:
    """The HMAC key of a destination's `whsec_` secret; ForwardingError if it is not one.

    The message never repeats the secret.
    """
    if not secret.startswith(PREFIX):
        raise ForwardingError("the secret must be a Standard Webhooks secret: whsec_<base64>")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ForwardingError("the secret after whsec_ is not valid base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ForwardingError(
            f"the secret must decode to {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
            f"not {len(key)}"
        )
    return key


def signing_key(secret: str | None, imagekit_secrets: Sequence[str]) -> bytes:
    """The key to sign with: the destination's, else the first ImageKit secret's.

    ForwardingError when there is neither.
    """
    if secret:
        return destination_key(secret)
    if imagekit_secrets:
        return imagekit_secrets[0].encode("utf-8")
    raise ForwardingError(
        "no secret to sign with: give the destination a whsec_ secret "
        "or configure IMAGEKIT_WEBHOOK_SECRET"
    )


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value of one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


@cache
def user_agent() -> str:
    try:
        return f"ikledger/{version('ikledger')}"
    except PackageNotFoundError:
        return "ikledger/unknown"


def headers(
    key: bytes,
    *,
    event_id: str,
    body: bytes,
    timestamp: int,
    position: int,
    attempt: int,
    replay_job: int | None = None,
) -> dict[str, str]:
    """Every header of one attempt; `timestamp` is that attempt's own (Unix seconds)."""
    result = {
        "Content-Type": "application/json",
        "User-Agent": user_agent(),
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, event_id, timestamp, body),
        "ikledger-position": str(position),
        "ikledger-attempt": str(attempt),
    }
    if replay_job is not None:
        result["ikledger-replay"] = str(replay_job)
    return result
