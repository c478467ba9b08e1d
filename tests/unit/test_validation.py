"""Strict parsing of verified bodies."""

from __future__ import annotations

import json

import pytest

from receiver.ingest.validation import InvalidEvent, normalise_time, parse_event
from tests.support import payload, payload_names


@pytest.mark.parametrize("name", payload_names())
def test_documented_payloads_are_valid(name):
    body = payload(name)
    event = parse_event(body)
    document = json.loads(body)
    assert (event.id, event.type) == (document["id"], document["type"])
    assert event.created_at.endswith("Z") and len(event.created_at) == 24


def test_created_at_is_normalised_to_utc_milliseconds():
    assert normalise_time("2022-06-20T13:59:58.4619+02:00") == "2022-06-20T11:59:58.461Z"
    assert normalise_time("2022-06-20T11:59:58Z") == "2022-06-20T11:59:58.000Z"


def test_camel_case_created_at_is_accepted_when_snake_case_is_absent():
    body = json.dumps({"id": "a", "type": "t", "createdAt": "2022-06-20T11:59:58.461Z", "data": {}})
    assert parse_event(body.encode()).created_at == "2022-06-20T11:59:58.461Z"


def test_unknown_event_types_are_valid():
    body = json.dumps(
        {"id": "a", "type": "asset.teleported", "created_at": "2030-01-01T00:00:00Z", "data": {}}
    )
    assert parse_event(body.encode()).type == "asset.teleported"


GOOD = {"id": "a", "type": "t", "created_at": "2022-06-20T11:59:58.461Z", "data": {}}


def variant(**changes) -> bytes:
    document = {**GOOD, **changes}
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "body,code,words",
    [
        (b"\xff\xfe", "invalid_utf8", "UTF-8"),
        (b"\xef\xbb\xbf" + variant(), "invalid_json", "byte order mark"),
        (b'{"id": ', "invalid_json", "not JSON"),
        (b'{"id": NaN}', "invalid_json", "NaN"),
        (b'{"id": Infinity}', "invalid_json", "Infinity"),
        (b'{"id": "a", "id": "b"}', "duplicate_key", "'id' twice"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json", "nested"),
        (b"[]", "not_an_object", "object"),
        (variant(id=...), "missing_field", "'id'"),
        (variant(id=""), "invalid_field", "empty"),
        (variant(id=7), "invalid_field", "string"),
        (variant(id="x" * 257), "invalid_field", "longer"),
        (variant(id="a\nb"), "invalid_field", "control"),
        (variant(type=None), "invalid_field", "'type'"),
        (variant(created_at=...), "missing_field", "created_at"),
        (variant(created_at="yesterday"), "invalid_field", "ISO-8601"),
        (variant(created_at="2022-13-45T00:00:00Z"), "invalid_field", "valid date"),
        (variant(created_at=1655726398), "invalid_field", "ISO-8601"),
        (variant(data=...), "missing_field", "'data'"),
        (variant(data=[1]), "invalid_field", "'data' must be an object"),
    ],
)
def test_bad_bodies_say_what_is_wrong(body, code, words):
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body)
    assert caught.value.code == code
    assert words in caught.value.message
