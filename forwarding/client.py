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
from typing import NamedTuple, Protocol

import urllib3
from urllib3 import exceptions as x

SNIPPET = 2048  # bytes of an answer's body kept in the journal


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
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
    """`Client` over one urllib3 pool manager: connections reused per host."""

    def __init__(self, *, maxsize: int = 8, num_pools: int = 16):
        self._pools = urllib3.PoolManager(
            num_pools=num_pools, maxsize=maxsize, block=False, retries=False
        )

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        try:
            response = self._pools.request(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(total=timeout),
                retries=False,
                redirect=False,
                preload_content=False,
            )
            try:
                snippet = response.read(SNIPPET + 1)
            except BaseException:
                response.close()
                raise
        except Exception as exc:
            raise TransportError(classify(exc), type(exc).__name__) from exc
        if len(snippet) > SNIPPET:
            response.close()  # a long answer: drop the connection rather than read it all
        else:
            response.release_conn()
        return Answer(
            response.status, {k.lower(): v for k, v in response.headers.items()}, snippet[:SNIPPET]
        )

    def close(self) -> None:
        self._pools.clear()
