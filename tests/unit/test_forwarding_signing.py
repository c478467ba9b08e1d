"""Forwarded deliveries verify with the real libraries: standardwebhooks and ImageKit's SDK."""

from __future__ import annotations

import base64
import json
import time

import pytest
from imagekitio import ImageKit
from standardwebhooks import Webhook, WebhookVerificationError

from forwarding import ForwardingError, signing_key
from forwarding.signing import destination_key, headers
from tests.support import SECRET, payload

OWN_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
BODY = payload("video.transformation.ready")


def forwarded(secret, imagekit_secrets=(), *, timestamp=None, replay_job=None) -> dict:
    key = signing_key(secret, imagekit_secrets)
    return headers(
        key,
        event_id="evt-1",
        body=BODY,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        position=42,
        attempt=3,
        replay_job=replay_job,
    )


def test_destination_secret_signature_verifies_with_standardwebhooks():
    sent = forwarded(OWN_SECRET)
    verified = Webhook(OWN_SECRET).verify(BODY, sent)
    assert verified == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(bytes(32)).decode()).verify(BODY, sent)
    with pytest.raises(WebhookVerificationError):
        Webhook(OWN_SECRET).verify(BODY + b" ", sent)


def test_without_a_destination_secret_imagekits_sdk_accepts_the_forwarded_event():
    sdk = ImageKit(private_key="private_unused", webhook_secret=SECRET)
    sent = forwarded(None, (SECRET, "whsec_second"))
    event = sdk.webhooks.unwrap(BODY.decode(), headers=sent, key=SECRET)
    assert event.id == json.loads(BODY)["id"]
    with pytest.raises(Exception):  # noqa: B017 -- any refusal by the oracle
        sdk.webhooks.unwrap(BODY.decode(), headers=sent, key="whsec_other")


def test_an_old_timestamp_is_refused_so_each_attempt_is_signed_afresh():
    sent = forwarded(OWN_SECRET, timestamp=int(time.time()) - 3600)
    with pytest.raises(WebhookVerificationError):
        Webhook(OWN_SECRET).verify(BODY, sent)


def test_headers_name_the_event_position_attempt_and_replay():
    sent = forwarded(OWN_SECRET, replay_job=9)
    assert sent["webhook-id"] == "evt-1"
    assert (sent["ikledger-position"], sent["ikledger-attempt"], sent["ikledger-replay"]) == (
        "42",
        "3",
        "9",
    )
    assert sent["Content-Type"] == "application/json"
    assert sent["User-Agent"].startswith("ikledger/")
    assert "ikledger-replay" not in forwarded(OWN_SECRET)


@pytest.mark.parametrize(
    "bad",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),
    ],
)
def test_a_secret_that_is_not_a_standard_webhooks_secret_is_refused_without_echo(bad):
    with pytest.raises(ForwardingError) as raised:
        destination_key(bad)
    assert bad.removeprefix("whsec_") not in str(raised.value)


def test_no_secret_at_all_is_a_clear_error():
    with pytest.raises(ForwardingError, match="no secret"):
        signing_key(None, ())
