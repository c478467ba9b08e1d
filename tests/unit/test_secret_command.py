"""`ikledger secret`: a fresh local webhook secret that the receiver accepts."""

from __future__ import annotations

import base64
import re
import time

from click.testing import CliRunner

from receiver.cli import cli
from receiver.ingest.signatures import sign_standard, verify


def secret() -> str:
    result = CliRunner().invoke(cli, ["secret"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_secret_prints_a_fresh_whsec_secret_of_24_to_32_random_bytes():
    first, second = secret(), secret()
    assert first != second
    for value in (first, second):
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+={0,2}", value), value
        assert 24 <= len(base64.b64decode(value.removeprefix("whsec_"))) <= 32


def test_a_delivery_signed_with_the_printed_secret_verifies():
    value, now = secret(), int(time.time())
    body = b'{"type": "video.transformation.accepted"}'
    headers = sign_standard(value, "msg_1", now, body)
    assert verify(headers, body, [value], now=lambda: now).scheme == "standard-webhooks"
