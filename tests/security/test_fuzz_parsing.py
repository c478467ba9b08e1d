"""Hypothesis over parsing and verification: nothing but the documented errors, ever.

Whatever `parse_event` accepts must also be readable by the read models (orjson)
and storable (UTF-8 text columns), so an accepted body can never poison them.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import falcon.testing
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from receiver import Config, create_app
from receiver.ingest.signatures import SignatureError, sign_legacy, sign_standard, verify
from receiver.ingest.validation import InvalidEvent, normalise_time, parse_event
from store import SQLiteStore
from tests.support import SECRET, event_body

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
PARSE_CODES = {
    "invalid_utf8",
    "invalid_json",
    "duplicate_key",
    "not_an_object",
    "missing_field",
    "invalid_field",
}
SIGNATURE_CODES = {
    "signature_missing",
    "signature_malformed",
    "signature_invalid",
    "signature_expired",
    "signature_future",
}
NORMALISED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

# JSON-looking text: fragments that stress the decoder, glued at random.
TOKENS = [
    "{", "}", "[", "]", ",", ":", '"', '"id"', '"type"', '"created_at"', '"data"', '"a"',
    "1", "-0", "1e400", "1e-400", "7" * 5000, "NaN", "Infinity", "null", "true", " ",
    "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\u0000", "\\", "\ufeff", "é", "\x00",
    '"2024-01-02T03:04:05Z"', '"9999-12-31T23:59:59-23:59"', "[" * 3000,
]  # fmt: skip
json_like = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=15,
)


def events_with_random_fields():
    fields = {
        "id": json_values,
        "type": json_values,
        "created_at": json_values | st.text(alphabet="0123456789-:TZ.+ ", max_size=30),
        "data": json_values,
    }
    return st.fixed_dictionaries({}, optional=fields).flatmap(
        lambda doc: st.dictionaries(st.text(max_size=5), json_values, max_size=3).map(
            lambda extra: {**extra, **doc}
        )
    )


def mutated(body: bytes):
    """A valid body with a few bytes inserted, deleted or replaced."""

    def apply(edits):
        data = bytearray(body)
        for position, kind, byte in edits:
            position %= len(data) + 1
            if kind == 0:
                data.insert(position, byte)
            elif kind == 1 and position < len(data):
                del data[position]
            elif position < len(data):
                data[position] = byte
        return bytes(data)

    edit = st.tuples(st.integers(0, 10_000), st.integers(0, 2), st.integers(0, 255))
    return st.lists(edit, min_size=1, max_size=4).map(apply)


bodies = st.one_of(
    st.binary(max_size=300),
    json_like.map(lambda text: text.encode("utf-8", "surrogatepass")),
    events_with_random_fields().map(lambda d: json.dumps(d, allow_nan=True).encode()),
    mutated(event_body("evt-fuzz")),
)


def check_parse(body: bytes) -> None:
    try:
        event = parse_event(body)
    except InvalidEvent as exc:
        assert exc.code in PARSE_CODES and exc.message
        return
    # Accepted: storable, readable by the read models, and normalised.
    event.id.encode("utf-8")
    event.type.encode("utf-8")
    assert NORMALISED.fullmatch(event.created_at)
    orjson.loads(body)


@SETTINGS
@given(body=bodies)
@example(body=b'{"id":"a","type":"t","created_at":"2024-01-01T00:00:00Z","data":{"x":"\\ud800"}}')
@example(body=b'{"id":"a","type":"t","created_at":"2024-01-01T00:00:00Z","data":{"x":1e400}}')
@example(
    body=b'{"id":"a","type":"t","created_at":"2024-01-01T00:00:00Z","data":{"x":'
    + b"7" * 5000
    + b"}}"
)
def test_parse_event_raises_only_invalid_event(body):
    check_parse(body)


@SETTINGS
@given(value=st.text(max_size=40) | st.text(alphabet="0123456789-:TZ.+ ", max_size=40))
def test_normalise_time_raises_only_invalid_event(value):
    try:
        result = normalise_time(value)
    except InvalidEvent as exc:
        assert exc.code == "invalid_field"
        return
    assert NORMALISED.fullmatch(result)


header_values = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="v1,0123456789abcdefABCDEF=+/t. -", max_size=120),
    st.integers(-(10**17), 10**17).map(str),
    st.floats(allow_nan=True).map(str),
)
header_names = st.sampled_from(
    ["webhook-id", "webhook-timestamp", "webhook-signature", "x-ik-signature"]
)


@SETTINGS
@given(
    headers=st.dictionaries(header_names, header_values),
    body=st.binary(max_size=100),
    secrets=st.lists(st.text(min_size=1, max_size=20), max_size=3),
)
def test_verify_raises_only_signature_error_on_random_headers(headers, body, secrets):
    try:
        verify(headers, body, secrets, tolerance=300, now=time.time)
    except SignatureError as exc:
        assert exc.code in SIGNATURE_CODES | {"no_secret"} and exc.message


@SETTINGS
@given(
    scheme=st.sampled_from(["standard", "legacy"]),
    name=header_names,
    edits=st.lists(
        st.tuples(st.integers(0, 200), st.sampled_from("v1,=+/ t.-0aZ\x00é")), max_size=3
    ),
    cut=st.integers(0, 200),
)
def test_verify_of_mutated_valid_headers_accepts_only_the_untouched(scheme, name, edits, cut):
    body, now = event_body("evt-sig"), int(time.time())
    if scheme == "standard":
        headers = sign_standard(SECRET, "msg_1", now, body)
    else:
        headers = sign_legacy(SECRET, now * 1000, body)
    original = dict(headers)
    if name in headers:
        value = headers[name][: max(cut, 1)] if cut < len(headers[name]) else headers[name]
        for position, char in edits:
            position %= len(value) + 1
            value = value[:position] + char + value[position:]
        headers[name] = value
    try:
        verify(headers, body, [SECRET], tolerance=300, now=lambda: now)
    except SignatureError as exc:
        assert exc.code in SIGNATURE_CODES
        assert headers != original
    else:
        # Only a header that still says the same thing may pass.
        if headers == original:
            return
        if name == "webhook-signature":
            assert original[name] in headers[name].split(" ")  # plus other, unmatched entries
        elif name == "webhook-timestamp":
            assert int(headers[name]) == int(original[name])  # leading zeros
        elif name == "x-ik-signature":
            assert headers[name].replace(" ", "") == original[name]  # spaces around parts
        else:
            assert headers.get(name) == original.get(name)


@pytest.fixture(scope="module")
def client():
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteStore(Path(directory) / "fuzz.db", timeout=2.0)
        app = create_app(Config(secrets=(SECRET,), max_body=4096), store)
        yield falcon.testing.TestClient(app), store
        store.close()


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=bodies,
    signing=st.sampled_from(["standard", "legacy", "none", "random"]),
    random_headers=st.dictionaries(header_names, header_values),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", None]),
)  # fmt: skip
def test_webhook_answers_only_documented_statuses(
    client, body, signing, random_headers, content_type
):
    http, store = client
    if signing == "standard":
        headers = sign_standard(SECRET, "msg_f", int(time.time()), body) if _utf8(body) else {}
    elif signing == "legacy":
        headers = sign_legacy(SECRET, int(time.time() * 1000), body)
    else:
        headers = random_headers if signing == "random" else {}
    if content_type:
        headers = {**headers, "content-type": content_type}
    response = http.simulate_post("/webhook", body=body, headers=headers)
    assert response.status_code in (200, 400, 401, 413, 415), response.text
    if response.status_code == 200:
        assert content_type and content_type.startswith("application/json")
        stored = store.get(response.json["id"])
        assert stored is not None
        check_parse(stored.body)
    else:
        assert response.json["code"] in PARSE_CODES | SIGNATURE_CODES | {
            "body_too_large",
            "unsupported_media_type",
        }


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
