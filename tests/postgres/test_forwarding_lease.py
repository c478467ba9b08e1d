"""Two forwarder processes on one PostgreSQL log: one holds the destination's lease, the
other takes over within seconds when the holder is SIGKILLed; nothing is lost."""

from __future__ import annotations

import signal
from collections import Counter

import forwarding
from tests.forwarding_support import Recorder, start_forwarder, stop_forwarder
from tests.integration.test_forwarding_delivery import video_event
from tests.support import SECRET, wait_for


def holder_pid(state) -> int | None:
    holder = state.lease_holder("app")
    return int(holder.split(":")[1]) if holder else None


def test_one_forwarder_holds_the_lease_and_another_takes_over_after_a_kill(open_pg, postgres_url):
    server = Recorder().start()
    log = open_pg()
    state = log.forwarding()
    processes = []
    try:
        forwarding.add_destination(log, "app", server.url, start="start", timeout=5)
        log.append_many([video_event(f"a{n % 3}-{n:03d}", f"a{n % 3}") for n in range(20)])
        processes = [start_forwarder(postgres_url, SECRET, ttl=1.0) for _ in range(2)]
        pids = {p.pid: p for p in processes}
        wait_for(lambda: state.counts("app")["delivered"] == 20, "the first 20 delivered")
        first = holder_pid(state)
        assert first in pids
        other = next(pid for pid in pids if pid != first)
        assert pids[other].poll() is None  # running, waiting for the lease
        stop_forwarder(pids[first], signal.SIGKILL)
        log.append_many([video_event(f"b{n % 3}-{n:03d}", f"b{n % 3}") for n in range(20)])
        wait_for(lambda: state.counts("app")["delivered"] == 40, "the next 20 delivered")
        assert holder_pid(state) == other
    finally:
        for process in processes:
            stop_forwarder(process)
        server.stop()
    sent = Counter(server.ids())
    assert len(sent) == 40 and max(sent.values()) == 1  # nothing lost; nothing was in flight
