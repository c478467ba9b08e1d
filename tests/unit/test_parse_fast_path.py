"""The fast parse (orjson + key counting) decides exactly as the strict parser does."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.ingest.validation import InvalidEvent, _parse_strictly, parse_event

keys = st.sampled_from(["id", "type", "data", "a", 'q"uote', "colon:", "ü", "\\"]) | st.text(
    max_size=4
)
scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=6)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(st.tuples(keys, inner), max_size=4).map(lambda pairs: ("object", pairs))
    ),
    max_leaves=10,
)


def render(value, space: str, ascii_only: bool) -> str:
    """JSON text of `value`, where ("object", pairs) may repeat a key."""
    if isinstance(value, tuple):
        items = [
            json.dumps(k, ensure_ascii=ascii_only)
            + space
            + ":"
            + " "
            + render(v, space, ascii_only)
            for k, v in value[1]
        ]
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(render(v, space, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def verdict(parse, body: bytes):
    try:
        return ("ok", parse(body))
    except InvalidEvent as exc:
        return ("refused", exc.code)


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(st.tuples(keys, values), max_size=5),
    space=st.sampled_from(["", " ", "\n"]),
    ascii_only=st.booleans(),
)
def test_fast_path_refuses_duplicate_keys_exactly_as_strict_parser(pairs, space, ascii_only):
    body = render(("object", pairs), space, ascii_only).encode()
    strict = verdict(_parse_strictly, body)
    fast = verdict(lambda b: parse_event(b).document, body)
    if strict[0] == "refused":
        assert fast == strict
    else:
        # The strict parse accepted the JSON; the fast one must agree on duplicates
        # (it may refuse later for a missing id/type/data, which the strict parse skips).
        assert fast[0] == "ok" or fast[1] in {"missing_field", "invalid_field"}


def test_duplicate_key_hidden_behind_an_escaped_quote_is_still_refused():
    body = (
        b'{"id":"a","type":"t","created_at":"2024-01-01T00:00:00Z","data":{"x":"\\u0022:","x":1}}'
    )
    assert verdict(parse_event, body) == ("refused", "duplicate_key")
