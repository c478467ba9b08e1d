"""One forwarder thread per destination that is not paused: `run`.

It starts a `Forwarder` (`engine.py`) for each destination, stops it when its
destination is paused or removed, and retries one that failed after a pause; the
forwarders' leases share the work among several processes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from store import EventStore, StoreError
from store.forwarding import Attempt

from .client import Client, HttpClient
from .engine import Forwarder, Settings, holder_name
from .errors import ForwardingError

log = logging.getLogger("ikledger.forwarding")

DEFAULT_SETTINGS = Settings()  # frozen: one value serves every call


def run(
    store: EventStore,
    stop: threading.Event,
    *,
    client: Client | None = None,
    settings: Settings = DEFAULT_SETTINGS,
    poll: float = 0.5,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> None:
    """Run a forwarder thread for every destination that is not paused, until `stop` is set.

    `on_attempt`: see `Forwarder`.

    New destinations start within `poll` seconds; a forwarder ends by itself when its
    destination is paused or removed. One process holds one lease holder name per
    destination; several processes share the work through the leases.
    """
    client = client or HttpClient()
    holder = holder_name()
    running: dict[str, tuple[threading.Thread, threading.Event]] = {}
    retry_at: dict[str, float] = {}
    state = store.forwarding()

    def forward(name: str, own_stop: threading.Event) -> None:
        forwarder = Forwarder(
            store, name, client=client, settings=settings, holder=holder, on_attempt=on_attempt
        )
        try:
            forwarder.run(own_stop)
        except ForwardingError as exc:
            log.error("%s: cannot forward: %s", name, exc)
            retry_at[name] = time.monotonic() + 30
        except StoreError as exc:
            log.warning("%s: the store failed: %s", name, exc)
            retry_at[name] = time.monotonic() + 1

    try:
        while not stop.is_set():
            try:
                destinations = state.destinations()
            except StoreError as exc:
                log.warning("cannot read the destinations: %s", exc)
                destinations = []
            wanted = {d.name for d in destinations if not d.paused}
            for name in list(running):
                thread, own_stop = running[name]
                if name not in wanted:
                    own_stop.set()
                if not thread.is_alive():
                    del running[name]
            for name in sorted(wanted - set(running)):
                if retry_at.get(name, 0) > time.monotonic():
                    continue
                own_stop = threading.Event()
                thread = threading.Thread(
                    target=forward, args=(name, own_stop), name=f"ikl-fwd-{name}", daemon=True
                )
                running[name] = (thread, own_stop)
                thread.start()
            stop.wait(poll)
    finally:
        for _, own_stop in running.values():
            own_stop.set()
        deadline = time.monotonic() + settings.drain
        for thread, _ in running.values():
            thread.join(max(0.0, deadline - time.monotonic()))
