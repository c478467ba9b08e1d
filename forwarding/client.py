"""The HTTP client forwarding posts with: urllib3, pooled connections, no retries, no redirects.

`post` returns an `Answer` for any HTTP answer (whatever its status) and raises
`TransportError` with a stable error class when none came:

- `timeout`: no complete answer within the destination's timeout (connect + answer);
- `connection_refused`, `connection_reset`, `dns_error`, `tls_error`;
- `protocol_error`: the connection closed or broke mid-answer, or the answer was not HTTP;
- `connection_error`: any other failure to connect.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from typing import NamedTuple, Protocol

import urllib3
from urllib3 import exceptions as x
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.util import parse_url

SNIPPET = 2048  # bytes of an answer's body kept in the journal


class Answer(NamedTuple):
    status: int
    headers: Mapping[str, str]  # looked up by any case of a name
    body: bytes  # the first SNIPPET bytes


class TransportError(Exception):
    """No HTTP answer came; `kind` is the error class journalled."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class Client(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer: ...


def _chain(exc: BaseException | None) -> list[BaseException]:
    found: list[BaseException] = []
    while exc is not None and exc not in found:
        found.append(exc)
        # urllib3's errors keep their cause in `reason`; ssl.SSLError's `reason` is a
        # string (the OpenSSL reason code), not a link of the chain.
        reason = getattr(exc, "reason", None)
        if not isinstance(reason, BaseException):
            reason = None
        exc = reason or exc.__cause__ or exc.__context__
    return found


def classify(exc: BaseException) -> str:
    """The error class of an exception raised while posting (see the module docstring)."""
    chain = _chain(exc)
    kinds = [type(e) for e in chain]
    if any(issubclass(k, x.NameResolutionError | socket.gaierror) for k in kinds):
        return "dns_error"
    if any(issubclass(k, x.SSLError | ssl.SSLError) for k in kinds):
        return "tls_error"
    if any(issubclass(k, ConnectionRefusedError) for k in kinds):
        return "connection_refused"
    if any(issubclass(k, ConnectionResetError | BrokenPipeError) for k in kinds):
        return "connection_reset"
    # urllib3's NewConnectionError derives from its ConnectTimeoutError: a failure to
    # connect is a timeout only when a timeout caused it.
    timeouts = x.TimeoutError | socket.timeout | TimeoutError
    if any(issubclass(k, timeouts) and not issubclass(k, x.NewConnectionError) for k in kinds):
        return "timeout"
    if any(issubclass(k, x.ProtocolError | x.HTTPError) for k in kinds) and not any(
        issubclass(k, x.NewConnectionError) for k in kinds
    ):
        return "protocol_error"
    return "connection_error"


class HttpClient:
    """`Client` over one urllib3 pool manager: connections reused per host.

    Each URL's pool and path are looked up once, not parsed again per request, and the
    answer is read as sent: ikledger asks for no content coding (`Accept-Encoding:
    identity`), so there is nothing to decode, and urllib3's decoding layer was a fifth
    of the client's CPU per request.
    """

    MAX_TARGETS = 64  # URLs whose pool is remembered (destinations are few)

    def __init__(self, *, maxsize: int = 8, num_pools: int = 16):
        self._pools = urllib3.PoolManager(
            num_pools=num_pools, maxsize=maxsize, block=False, retries=False
        )
        self._targets: dict[str, tuple[HTTPConnectionPool, str]] = {}
        self._timeouts: dict[float, urllib3.Timeout] = {}

    def _target(self, url: str) -> tuple[HTTPConnectionPool, str]:
        target = self._targets.get(url)
        # A pool the manager dropped (more hosts than `num_pools`) is closed: ask again.
        if target is None or target[0].pool is None:
            pool = self._pools.connection_from_url(url)
            if len(self._targets) >= self.MAX_TARGETS:
                self._targets.clear()
            target = self._targets[url] = (pool, parse_url(url).request_uri)
        return target

    def _timeout(self, seconds: float) -> urllib3.Timeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            if len(self._timeouts) >= self.MAX_TARGETS:
                self._timeouts.clear()
            timeout = self._timeouts[seconds] = urllib3.Timeout(total=seconds)
        return timeout

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        try:
            pool, path = self._target(url)
            response = pool.urlopen(
                "POST",
                path,
                body=body,
                headers=headers,
                timeout=self._timeout(timeout),
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
            )
            try:
                snippet = response.read(SNIPPET + 1, decode_content=False)
                # A raw read returns what came before the connection closed; the next
                # one raises (a `protocol_error`) if the answer was cut short.
                while len(snippet) <= SNIPPET and response.length_remaining:
                    more = response.read(SNIPPET + 1 - len(snippet), decode_content=False)
                    if not more:
                        break
                    snippet += more
            except BaseException:
                response.close()
                raise
        except Exception as exc:
            raise TransportError(classify(exc), type(exc).__name__) from exc
        if len(snippet) > SNIPPET:
            response.close()  # a long answer: drop the connection rather than read it all
        else:
            response.release_conn()
        return Answer(response.status, response.headers, snippet[:SNIPPET])

    def close(self) -> None:
        self._targets.clear()
        self._pools.clear()
