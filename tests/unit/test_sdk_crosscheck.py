"""The receiver accepts exactly the Standard Webhooks deliveries ImageKit's Python SDK accepts.

Random bodies, secrets, timestamps and tamperings are checked by both our
`verify` and `imagekitio`'s `client.webhooks.unwrap` (the oracle) with the real
clock. Two documented, deliberate differences are kept out of the generated
space: the SDK takes fractional timestamps (the spec says whole seconds; we
refuse them) and the SDK throws on a malformed extra signature entry where we
skip it.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imagekitio import ImageKit

from receiver.ingest.signatures import SignatureError, sign_standard, verify

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.dictionaries(st.text(max_size=10), json_values, max_size=5).map(
    lambda doc: json.dumps(doc, ensure_ascii=False)
)
secrets = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1, max_size=40
).map(lambda s: "whsec_" + s)
tamperings = st.sampled_from(
    ["none", "body", "secret", "msg_id", "timestamp", "garbage", "extra_valid", "drop_prefix"]
)
# Offsets stay clear of the ±300 s edges so the two clocks cannot straddle one.
offsets = st.integers(-290, 290) | st.integers(310, 5000) | st.integers(-5000, -310)


SDK = ImageKit(private_key="private_unused", webhook_secret="whsec_unused")


def sdk_accepts(secret: str, body: str, headers: dict) -> bool:
    try:
        SDK.webhooks.unwrap(body, headers=headers, key=secret)
    except Exception:  # noqa: BLE001 -- any refusal by the oracle counts as "rejected"
        return False
    return True


def we_accept(secret: str, body: str, headers: dict) -> bool:
    try:
        verify(headers, body.encode(), [secret], tolerance=300, now=time.time)
    except SignatureError:
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies, secret=secrets, other=secrets, offset=offsets, tampering=tamperings, data=st.data()
)
def test_receiver_agrees_with_imagekit_sdk(body, secret, other, offset, tampering, data):
    stamp = int(time.time()) + offset
    headers = sign_standard(
        secret, "msg_" + data.draw(st.text("abc123", min_size=1, max_size=8)), stamp, body.encode()
    )
    if tampering == "body":
        body = body + " "
    elif tampering == "secret" and other != secret:
        headers = sign_standard(other, headers["webhook-id"], stamp, body.encode())
    elif tampering == "msg_id":
        headers["webhook-id"] += "x"
    elif tampering == "timestamp":
        headers["webhook-timestamp"] = str(stamp + 1)
    elif tampering == "garbage":
        headers["webhook-signature"] = (
            "v1," + base64.b64encode(data.draw(st.binary(max_size=40))).decode()
        )
    elif tampering == "extra_valid":
        junk = "v1," + base64.b64encode(b"x" * 32).decode()
        headers["webhook-signature"] = f"{junk} {headers['webhook-signature']}"
    elif tampering == "drop_prefix":
        headers["webhook-signature"] = headers["webhook-signature"].removeprefix("v1,")
        if "," in headers["webhook-signature"]:
            return  # no comma-free form to test
    assert we_accept(secret, body, headers) == sdk_accepts(secret, body, headers)


def test_oracle_is_not_trivially_rejecting():
    body = json.dumps({"id": "a"})
    headers = sign_standard("whsec_abc", "msg_1", int(time.time()), body.encode())
    assert sdk_accepts("whsec_abc", body, headers) and we_accept("whsec_abc", body, headers)
    headers["webhook-id"] = "msg_2"
    assert not sdk_accepts("whsec_abc", body, headers)


@pytest.mark.parametrize("stamp", ["1764230393.0", "1764230393.9"])
def test_fractional_timestamps_are_refused_although_the_sdk_floors_them(stamp):
    now = int(time.time())
    body = json.dumps({"id": "a"})
    headers = sign_standard("whsec_abc", "msg_1", now, body.encode())
    headers["webhook-timestamp"] = f"{now}.{stamp[-1]}"
    assert sdk_accepts("whsec_abc", body, headers)
    assert not we_accept("whsec_abc", body, headers)
