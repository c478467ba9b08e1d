"""Verification against ImageKit's signed reference deliveries and edge cases."""

from __future__ import annotations

import pytest

from receiver.ingest.signatures import (
    LEGACY,
    STANDARD,
    SignatureError,
    sign_legacy,
    sign_standard,
    verify,
)
from tests.support import SECRET, VECTORS, payload, payload_names

NOW = VECTORS["now_unix"]
TOLERANCE = VECTORS["tolerance_s"]


def lower(headers: dict) -> dict:
    return {name.lower(): value for name, value in headers.items()}


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_reference_vector_gets_expected_verdict(case):
    check = lambda: verify(
        lower(case["headers"]),
        case["body"].encode(),
        [VECTORS["secret"]],
        tolerance=TOLERANCE,
        now=lambda: NOW,
    )
    if case["valid"]:
        assert check().scheme == (STANDARD if case["scheme"] == "standard-webhooks" else LEGACY)
    else:
        with pytest.raises(SignatureError) as caught:
            check()
        assert caught.value.code.startswith("signature_")


def test_every_reference_vector_is_covered():
    valid = [c for c in VECTORS["cases"] if c["valid"]]
    assert len(valid) >= 7 and len(VECTORS["cases"]) - len(valid) >= 14


@pytest.mark.parametrize("name", payload_names())
@pytest.mark.parametrize("scheme", ["standard", "legacy"])
def test_documented_payloads_verify_both_ways(name, scheme):
    body = payload(name)
    if scheme == "standard":
        headers = sign_standard(SECRET, "msg_1", NOW, body)
    else:
        headers = sign_legacy(SECRET, NOW * 1000 + 123, body)
    verified = verify(headers, body, [SECRET], tolerance=300, now=lambda: NOW)
    assert verified.scheme == (STANDARD if scheme == "standard" else LEGACY)


@pytest.mark.parametrize(
    "offset,accepted", [(-300, True), (300, True), (-301, False), (301, False)]
)
@pytest.mark.parametrize("scheme", ["standard", "legacy"])
def test_tolerance_applies_in_both_directions(offset, accepted, scheme):
    body = payload("video.transformation.ready")
    if scheme == "standard":
        headers = sign_standard(SECRET, "msg_1", NOW + offset, body)
    else:
        headers = sign_legacy(SECRET, (NOW + offset) * 1000, body)
    if accepted:
        verify(headers, body, [SECRET], tolerance=300, now=lambda: NOW)
    else:
        with pytest.raises(SignatureError, match="older|ahead"):
            verify(headers, body, [SECRET], tolerance=300, now=lambda: NOW)


def test_rotation_accepts_any_configured_secret():
    body = payload("video.transformation.error")
    old, new = "whsec_old_secret_value", "whsec_new_secret_value"
    headers = sign_standard(old, "msg_1", NOW, body)
    assert verify(headers, body, [new, old], tolerance=300, now=lambda: NOW).secret_index == 1
    with pytest.raises(SignatureError):
        verify(headers, body, [new], tolerance=300, now=lambda: NOW)


@pytest.mark.parametrize(
    "headers,code",
    [
        ({}, "signature_missing"),
        ({"webhook-id": "m", "webhook-timestamp": str(NOW)}, "signature_missing"),
        (
            {"webhook-id": "m", "webhook-timestamp": f"{NOW}.5", "webhook-signature": "v1,AAAA"},
            "signature_malformed",
        ),
        (
            {"webhook-id": "m", "webhook-timestamp": f"-{NOW}", "webhook-signature": "v1,AAAA"},
            "signature_malformed",
        ),
        (
            {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v2,AAAA"},
            "signature_malformed",
        ),
        (
            {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1,AAAA"},
            "signature_invalid",
        ),
        ({"x-ik-signature": "t=1,v1=00,v1=00"}, "signature_malformed"),
        ({"x-ik-signature": f"t={NOW}000,v1=zz"}, "signature_malformed"),
        ({"x-ik-signature": f"t={NOW}000"}, "signature_malformed"),
    ],
)
def test_malformed_headers_have_stable_codes(headers, code):
    with pytest.raises(SignatureError) as caught:
        verify(headers, b"{}", [SECRET], tolerance=300, now=lambda: NOW)
    assert caught.value.code == code


def test_body_that_is_not_utf8_never_verifies():
    body = b'{"id": "\xff"}'
    headers = {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1,AAAA"}
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(headers, body, [SECRET], tolerance=300, now=lambda: NOW)
