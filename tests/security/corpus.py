"""Turns the cases of hostile_cases.json into the exact bytes sent over a socket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

from tests.support import SECRET

CORPUS = json.loads((Path(__file__).with_name("hostile_cases.json")).read_text())
OTHER_SECRET = "whsec_c29tZW9uZSBlbHNlJ3Mgc2VjcmV0IGtleQ=="
MAX_BODY = 262_144


def base_event(**overrides) -> dict:
    document = {
        "type": "video.transformation.accepted",
        "id": f"evt-{uuid.uuid4()}",
        "created_at": "2024-01-02T03:04:05.678Z",
        "request": {"x_request_id": str(uuid.uuid4()), "url": "https://ik.imagekit.io/d/v.mp4"},
        "data": {"asset": {"url": "https://ik.imagekit.io/demo/v.mp4"}},
    }
    document.update(overrides)
    return document


def _dumps(document) -> bytes:
    return json.dumps(document).encode("ascii")  # lone surrogates stay \\ud800 escapes


def _generated(spec: str) -> bytes:
    kind, _, arg = spec.partition(":")
    if kind == "nest_array":
        n = int(arg)
        return b"[" * n + b"]" * n
    if kind == "nest_array_open":
        return b"[" * int(arg)
    if kind == "nest_object_in_data":
        n = int(arg)
        head = _dumps(base_event(data=0))[:-2]  # ... "data": 0}  ->  ... "data":
        return head + b'{"a":' * n + b"1" + b"}" * n + b"}"
    if kind == "huge_id":
        return _dumps(base_event(id="i" * int(arg)))
    if kind == "long_number":
        return _dumps(base_event(data={"n": 0})).replace(b'"n": 0', b'"n": ' + b"7" * int(arg))
    if kind == "long_type":
        return _dumps(base_event(type="t" * int(arg)))
    if kind == "pad":
        size = int(arg)
        empty = _dumps(base_event(padding=""))
        body = _dumps(base_event(padding="x" * (size - len(empty))))
        assert len(body) == size, (len(body), size)
        return body
    if kind == "event_utf16":
        return json.dumps(base_event()).encode("utf-16-le")
    raise ValueError(f"unknown generator {spec!r}")


def body_of(case: dict) -> bytes:
    """The body a case describes, exactly."""
    if "text" in case:
        body = case["text"].encode("utf-8")
    elif "hex" in case:
        body = bytes.fromhex(case["hex"])
    elif "gen" in case:
        body = _generated(case["gen"])
    else:
        document = base_event(**case.get("event", {}))
        for name in case.get("drop", ()):
            del document[name]
        body = _dumps(document)
    if "gen_replace" in case:
        old, new = (part.encode() for part in case["gen_replace"])
        assert old in body, case["name"]
        body = body.replace(old, new)
    return bytes.fromhex(case.get("prefix_hex", "")) + body + case.get("append", "").encode()


def _b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def _hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signature_headers(case: dict, body: bytes) -> dict[str, str]:
    """The signature headers of a case: valid ones over the signed bytes, then overridden."""
    if "signed_body" in case:
        signed = body_of(case["signed_body"])
    else:
        signed = body[: case["signed_slice"]] if "signed_slice" in case else body
    now = time.time() + case.get("at", 0)
    msg_id, t, t_ms = f"msg_{uuid.uuid4().hex}", int(now), int(now * 1000)
    key, other = SECRET.encode(), OTHER_SECRET.encode()
    standard = f"{msg_id}.{t}.".encode() + signed
    canonical_key = base64.b64decode(SECRET.removeprefix("whsec_"))
    values = {
        "{id}": msg_id,
        "{t}": str(t),
        "{t_plus_1}": str(t + 1),
        "{t_ms}": str(t_ms),
        "{sig}": _b64(key, standard),
        "{other_sig}": _b64(other, standard),
        "{std_key_sig}": _b64(canonical_key, standard),
        "{hex}": _hex(key, f"{t_ms}.".encode() + signed),
        "{hex_s}": _hex(key, f"{t}.".encode() + signed),
        "{other_hex}": _hex(other, f"{t_ms}.".encode() + signed),
    }
    scheme = case.get("sign", "standard")
    if scheme == "standard":
        headers = {
            "webhook-id": "{id}",
            "webhook-timestamp": "{t}",
            "webhook-signature": "v1,{sig}",
        }
    elif scheme == "legacy":
        headers = {"x-ik-signature": "t={t_ms},v1={hex}"}
    else:
        headers = {}
    headers.update(case.get("headers", {}))
    result = {}
    for name, template in headers.items():
        if template is None:
            continue
        for placeholder, value in values.items():
            template = template.replace(placeholder, value)
        result[name] = template
    return result


def request_bytes(case: dict) -> tuple[bytes, bytes, bytes]:
    """(request line and headers, body as framed on the wire, the body) for one case."""
    body = body_of(case)
    headers = {"Host": "127.0.0.1", "Connection": "close"}
    content_type = case.get("content_type", "application/json")
    if content_type is not None:
        headers["Content-Type"] = content_type
    headers.update(signature_headers(case, body))
    transport = case.get("transport", {})
    if "chunked" in transport:
        headers["Transfer-Encoding"] = "chunked"
        size = transport["chunked"]
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        if transport.get("bad_chunk"):
            wire = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
        else:
            wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        wire = body
    if "content_length" in transport:
        headers["Content-Length"] = transport["content_length"]
    elif "chunked" not in transport:
        headers["Content-Length"] = str(len(body))
    lines = [f"{name}: {value}" for name, value in headers.items()]
    generator = case.get("header_gen", "")
    kind, _, arg = generator.partition(":")
    if kind == "many":
        lines += [f"X-Filler-{i}: v" for i in range(int(arg))]
    elif kind == "big":
        lines.append("X-Big: " + "a" * int(arg))
    elif kind == "big_signature":
        one = "v1," + values_free_b64() + " "
        lines = [line for line in lines if not line.lower().startswith("webhook-signature")]
        lines.append("webhook-signature: " + (one * (int(arg) // len(one)))[:-1])
    head = "POST /webhook HTTP/1.1\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n"
    return head.encode("latin-1"), wire, body


def values_free_b64() -> str:
    """A well-formed base64 HMAC that matches nothing."""
    return _b64(b"nobody", b"nothing")
