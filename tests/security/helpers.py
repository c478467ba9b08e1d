"""Helpers for the security tests: a served receiver whose output is kept, raw HTTP."""

from __future__ import annotations

import re
import select
import socket
import time
from dataclasses import dataclass

import httpx

from receiver.ui.auth import COOKIE


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(port: int, head: bytes, body: bytes = b"", *, timeout: float = 10.0) -> RawResponse:
    """Send bytes as they are over one connection and read the answer until the server closes.

    The body goes in slices; sending stops as soon as the server has answered (it may
    refuse before reading everything), so its early answer is not lost to a reset.
    """
    for attempt in range(3):
        data = _exchange(port, head, body, timeout)
        if data.startswith(b"HTTP/"):
            return _parse(data)
        time.sleep(0.05 * (attempt + 1))
    raise AssertionError(f"no HTTP answer, got {data[:200]!r}")


def _exchange(port: int, head: bytes, body: bytes, timeout: float) -> bytes:
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(head)
            for start in range(0, len(body), 16384):
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(body[start : start + 16384])
        except OSError:
            pass  # the server answered and closed while we were still sending
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except OSError:
            pass
    return received


def _parse(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return RawResponse(status, headers, body)


def signed_in(base: str, token: str) -> str:
    """A session cookie of the pages at `base`, got by logging in with the read `token`."""
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as client:
        page = client.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        answer = client.post("/ui/login", data={"csrf": csrf, "token": token, "next": "/ui"})
        assert answer.status_code == 303, answer.text
        return client.cookies[COOKIE]
