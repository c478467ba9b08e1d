"""The HTTP client's error classes for failures no HTTP answer comes back from.

Each against a real socket on loopback: a server that resets the connection once the
request arrives, and a TLS handshake against a server that speaks plain HTTP. A
resolver failure cannot be provoked on loopback alone (an unknown name is asked of
the network's resolver), so `dns_error` is classified from the error urllib3 raises
for one, wrapping the resolver's own `socket.gaierror`.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from urllib3.exceptions import NameResolutionError

from forwarding import HttpClient, TransportError
from forwarding.client import classify

HEADERS = {"Content-Type": "application/json"}


@contextmanager
def serving(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection-at-a-time server on a free loopback port running `answer`."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # a closed listener does not wake accept(): look again
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                answer(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def reset_after_the_request(conn: socket.socket) -> None:
    conn.recv(65536)
    # SO_LINGER with a zero timeout: close() sends a RST, not a FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def plain_http(conn: socket.socket) -> None:
    conn.recv(65536)  # the TLS ClientHello, read as if it were a request
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def client():
    client = HttpClient()
    yield client
    client.close()


@pytest.mark.parametrize(
    ("scheme", "answer", "kind"),
    [
        ("http", reset_after_the_request, "connection_reset"),
        ("https", plain_http, "tls_error"),
    ],
)
def test_a_failure_without_an_answer_has_its_error_class(client, scheme, answer, kind):
    with serving(answer) as port, pytest.raises(TransportError) as caught:
        client.post(f"{scheme}://127.0.0.1:{port}/hook", b"{}", HEADERS, 5.0)
    assert caught.value.kind == kind


def test_a_name_the_resolver_does_not_know_is_a_dns_error():
    resolver = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    error = NameResolutionError("app.invalid", None, resolver)  # as urllib3 raises it
    assert classify(error) == "dns_error"


def read_request(conn: socket.socket) -> bytes:
    """One whole request: its head, then its Content-Length bytes. A server that closes
    with part of a request unread makes the kernel send a reset, not the answer's end."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            break
        body += more
    return data


def answering(raw: bytes) -> Callable[[socket.socket], None]:
    """A server answer: read one whole request, send `raw`, close."""

    def answer(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(raw)

    return answer


def test_an_answer_is_kept_as_sent_and_its_headers_read_in_any_case(client):
    squeezed = gzip.compress(b'{"ok": true}')
    raw = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Encoding: gzip\r\nRetry-After: 7\r\n"
        + f"Content-Length: {len(squeezed)}\r\nConnection: close\r\n\r\n".encode()
        + squeezed
    )
    with serving(answering(raw)) as port:
        answer = client.post(f"http://127.0.0.1:{port}/hook", b"{}", HEADERS, 5.0)
    assert answer.status == 503
    assert answer.body == squeezed  # the journal keeps the bytes that came, not decoded
    assert answer.headers.get("retry-after") == answer.headers.get("Retry-After") == "7"


def test_an_answer_cut_short_is_a_protocol_error(client):
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\npart"
    with serving(answering(raw)) as port, pytest.raises(TransportError) as caught:
        client.post(f"http://127.0.0.1:{port}/hook", b"{}", HEADERS, 5.0)
    assert caught.value.kind == "protocol_error"


def test_a_long_answer_is_kept_to_its_first_2_kb(client):
    body = bytes(range(256)) * 40  # 10 KB
    raw = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    with serving(answering(raw)) as port:
        answer = client.post(f"http://127.0.0.1:{port}/hook", b"{}", HEADERS, 5.0)
    assert answer.status == 200 and answer.body == body[:2048]
