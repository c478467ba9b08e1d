"""Verification of ImageKit's two webhook signature schemes over the exact body bytes.

- Standard Webhooks (current SDKs): `webhook-id`, `webhook-timestamp` (Unix seconds),
  `webhook-signature` (`v1,<base64>`, several separated by spaces; any match passes).
  Computed with the `standardwebhooks` library, keyed the way ImageKit's SDKs key it:
  the UTF-8 bytes of the whole secret string, `whsec_` prefix included.
- Legacy `x-ik-signature: t=<unix ms>,v1=<hex>`: HMAC-SHA256 of `"{t}.{body}"`.

Both compare in constant time and reject timestamps outside the tolerance in either
direction. Timestamps must be integers; the clock is injected for tests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks import Webhook
from standardwebhooks.webhooks import hmac_data

STANDARD = "standard-webhooks"
LEGACY = "x-ik-signature"

_INTEGER = re.compile(r"[0-9]{1,15}")  # no sign, no fraction, no exponent
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_MAX_SIGNATURES = 16


class SignatureError(Exception):
    """The delivery is not authentic; `code` is stable, the message says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Verified:
    scheme: str
    secret_index: int  # which of the configured secrets matched (rotation)


@lru_cache(maxsize=32)
def _webhook(secret: str) -> Webhook:
    return Webhook(base64.b64encode(secret.encode("utf-8")).decode("ascii"))


@lru_cache(maxsize=32)
def _key(secret: str) -> bytes:
    """ImageKit's HMAC key: the UTF-8 bytes of the whole secret, `whsec_` included.

    Exactly the key `_webhook(secret)` holds once the library has decoded it.
    """
    return secret.encode("utf-8")


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    tolerance: int = 300,
    now: Callable[[], float],
) -> Verified:
    """Check the delivery's signature with any of `secrets`.

    `headers` must have lower-case names. Standard Webhooks headers win when both
    schemes are present. Raises SignatureError on anything but a valid signature.
    """
    if not secrets:
        raise SignatureError("no_secret", "the receiver has no webhook secret configured")
    if "webhook-signature" in headers or "webhook-id" in headers or "webhook-timestamp" in headers:
        return _verify_standard(headers, body, secrets, tolerance, now())
    if "x-ik-signature" in headers:
        return _verify_legacy(headers["x-ik-signature"], body, secrets, tolerance, now())
    raise SignatureError(
        "signature_missing",
        "no signature headers: expected webhook-id, webhook-timestamp and webhook-signature "
        "(or the legacy x-ik-signature)",
    )


def _check_window(timestamp: float, now: float, tolerance: int) -> None:
    if timestamp < now - tolerance:
        raise SignatureError("signature_expired", f"timestamp is older than {tolerance} s")
    if timestamp > now + tolerance:
        raise SignatureError("signature_future", f"timestamp is more than {tolerance} s ahead")


def _verify_standard(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[str], tolerance: int, now: float
) -> Verified:
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signature_header = headers.get("webhook-signature", "")
    if not (msg_id and stamp and signature_header):
        missing = [
            name
            for name, value in (
                ("webhook-id", msg_id),
                ("webhook-timestamp", stamp),
                ("webhook-signature", signature_header),
            )
            if not value
        ]
        raise SignatureError("signature_missing", f"missing header: {', '.join(missing)}")
    if not _INTEGER.fullmatch(stamp):
        raise SignatureError("signature_malformed", "webhook-timestamp must be whole Unix seconds")
    timestamp = int(stamp)
    _check_window(timestamp, now, tolerance)
    offered = []
    for part in signature_header.split(" ")[:_MAX_SIGNATURES]:
        version, sep, value = part.partition(",")
        if not sep or version != "v1" or "," in value:
            continue
        try:
            # Strict: one padded base64 value and nothing after it, so no two header
            # strings carry the same signature (lenient decoding ignores trailing junk).
            offered.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not offered:
        raise SignatureError(
            "signature_malformed", "webhook-signature holds no v1,<base64> signature"
        )
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            # Both SDKs sign text; bytes that are not UTF-8 cannot carry a valid signature.
            raise SignatureError("signature_invalid", "no signature matches the body") from None
    # The library's signed string and HMAC, over the body's own bytes: the same as
    # Webhook.sign on the decoded text, without a datetime and a copy per request.
    message = f"{msg_id}.{timestamp}.".encode() + body
    for index, secret in enumerate(secrets):
        expected = hmac_data(_key(secret), message)
        if any(hmac.compare_digest(expected, sig) for sig in offered):
            return Verified(STANDARD, index)
    raise SignatureError("signature_invalid", "no signature matches the body")


def _verify_legacy(
    header: str, body: bytes, secrets: Sequence[str], tolerance: int, now: float
) -> Verified:
    fields: dict[str, str] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key in fields:
            raise SignatureError(
                "signature_malformed", "x-ik-signature must be t=<unix ms>,v1=<hex>"
            )
        fields[key] = value
    stamp, hexsig = fields.get("t", ""), fields.get("v1", "")
    if not _INTEGER.fullmatch(stamp) or not hexsig:
        raise SignatureError("signature_malformed", "x-ik-signature must be t=<unix ms>,v1=<hex>")
    if not _HEX.fullmatch(hexsig):  # bytes.fromhex alone would also take "ab cd"
        raise SignatureError("signature_malformed", "x-ik-signature v1 is not hex")
    offered = bytes.fromhex(hexsig)
    _check_window(int(stamp) / 1000, now, tolerance)
    message = stamp.encode("ascii") + b"." + body
    for index, secret in enumerate(secrets):
        expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
        if hmac.compare_digest(expected, offered):
            return Verified(LEGACY, index)
    raise SignatureError("signature_invalid", "no signature matches the body")


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Headers ImageKit would send for `body` (used by `ikledger trigger` and tests)."""
    signature = _webhook(secret).sign(
        msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode("utf-8")
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def sign_legacy(secret: str, timestamp_ms: int, body: bytes) -> dict[str, str]:
    """The legacy `x-ik-signature` header for `body`."""
    message = str(timestamp_ms).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return {"x-ik-signature": f"t={timestamp_ms},v1={digest}"}
