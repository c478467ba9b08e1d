"""What the CLI, the API and the pages do with destinations: thin adapters call these.

Every function validates its inputs and raises ForwardingError with a one-line message
(never holding a secret) for a user's mistake; the store's own errors pass through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from projections import timespec
from projections.framework import InvalidQuery
from projections.video_timeline import asset_key
from store import EventStore
from store.encoding import now_ms
from store.forwarding import (
    DELIVERED,
    FAILED,
    PENDING,
    Attempt,
    Destination,
    DestinationExists,
    Queued,
    UnknownDestination,
)

from .engine import matches
from .errors import ForwardingError
from .keys import ordering_key
from .schedule import DEFAULT_SCHEDULE, format_schedule, parse_schedule
from .signing import destination_key

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_TIMEOUT = 300.0
MAX_IN_FLIGHT = 256
_REPLAY_CHUNK = 500


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError:
        raise ForwardingError("the URL does not parse") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForwardingError("the URL must be http:// or https:// with a host")


def add_destination(
    store: EventStore,
    name: str,
    url: str,
    *,
    secret: str | None = None,
    types: Sequence[str] = (),
    timeout: float = 30.0,
    max_in_flight: int = 8,
    rate: float | None = None,
    retry_schedule: str = DEFAULT_SCHEDULE,
    start: str = "now",
    unordered: bool = False,
) -> Destination:
    """Configure a new destination; returns it. `start`: "now" (events stored from now on)
    or "start" (the whole log). ForwardingError for any bad setting or a taken name."""
    if not NAME.fullmatch(name or ""):
        raise ForwardingError(
            "a destination name is 1-64 letters, digits, '.', '_' or '-', starting with "
            "a letter or digit"
        )
    _check_url(url)
    if secret is not None:
        destination_key(secret)
    patterns = tuple(p.strip() for p in types if p.strip())
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ForwardingError(f"the timeout must be above 0 and at most {MAX_TIMEOUT:g} s")
    if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
        raise ForwardingError(f"max in flight must be 1 to {MAX_IN_FLIGHT}")
    if rate is not None and not rate > 0:
        raise ForwardingError("the rate must be above 0 per second")
    schedule = parse_schedule(retry_schedule)
    if start not in ("now", "start"):
        raise ForwardingError("--from must be now or start")
    destination = Destination(
        name,
        url,
        secret,
        patterns,
        float(timeout),
        int(max_in_flight),
        float(rate) if rate is not None else None,
        schedule,
        bool(unordered),
        created_ms=now_ms(),
        cursor=store.last_position() if start == "now" else 0,
    )
    try:
        store.forwarding().add_destination(destination)
    except DestinationExists as exc:
        raise ForwardingError(str(exc)) from None
    return destination


def _existing(store: EventStore, name: str) -> Destination:
    destination = store.forwarding().destination(name)
    if destination is None:
        raise ForwardingError(f"no destination named {name!r}")
    return destination


def pause(store: EventStore, name: str, reason: str = "paused by the operator") -> None:
    try:
        store.forwarding().set_paused(name, True, reason)
    except UnknownDestination as exc:
        raise ForwardingError(str(exc)) from None


def resume(store: EventStore, name: str) -> None:
    try:
        store.forwarding().set_paused(name, False)
    except UnknownDestination as exc:
        raise ForwardingError(str(exc)) from None


def remove(store: EventStore, name: str) -> None:
    """Remove the destination with its queue, journal, replays and lease."""
    try:
        store.forwarding().remove_destination(name)
    except UnknownDestination as exc:
        raise ForwardingError(str(exc)) from None


def is_failing(destination: Destination) -> bool:
    """Whether the destination's last attempt failed (its last failure is its newest outcome).

    A failure and a success in the same millisecond count as failing: which came last is
    not known, and a destination shown failing is looked at, one shown ok is not.
    """
    failed, succeeded = destination.last_failure_ms, destination.last_success_ms
    return failed is not None and (succeeded is None or failed >= succeeded)


def state_of(destination: Destination) -> str:
    """`paused`, `failing` (its last attempt failed) or `ok`."""
    if destination.paused:
        return "paused"
    return "failing" if is_failing(destination) else "ok"


def destination_status(store: EventStore, name: str, *, now: float | None = None) -> dict:
    """The destination's settings, counts, lag and last outcomes; never its secret.

    `lag_events` counts the pending deliveries and the log events not yet looked at;
    `lag_seconds` is the age (by ikledger's receipt) of the oldest of them, 0 when none.
    `state`: see `state_of`.
    """
    state = store.forwarding()
    d = _existing(store, name)
    counts = state.counts(name)
    head = store.last_position()
    unread = max(0, head - d.cursor)
    oldest = state.pending(name, limit=1)
    candidates = [oldest[0].position] if oldest else []
    if unread:
        candidates.append(d.cursor + 1)
    lag_seconds = 0.0
    if candidates:
        found = store.get_positions([min(candidates)])
        if found:
            received = datetime.fromisoformat(found[0].received_at)
            moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
            lag_seconds = max(0.0, (moment - received).total_seconds())
    return {
        "name": d.name,
        "url": d.display_url,
        "state": state_of(d),
        "paused": d.paused,
        "pause_reason": d.pause_reason,
        "signed_with": "destination secret" if d.secret else "ImageKit secret",
        "types": list(d.types),
        "timeout": d.timeout,
        "max_in_flight": d.max_in_flight,
        "rate": d.rate,
        "retry_schedule": format_schedule(d.schedule_ms),
        "unordered": d.unordered,
        "delivered": counts[DELIVERED],
        "pending": counts[PENDING],
        "failed": counts[FAILED],
        "lag_events": counts[PENDING] + unread,
        "lag_seconds": round(lag_seconds, 3),
        "last_success": _iso(d.last_success_ms),
        "last_failure": _iso(d.last_failure_ms),
        "last_failure_reason": d.last_failure,
        "forwarder": state.lease_holder(name),
    }


def list_destinations(store: EventStore) -> list[dict]:
    return [destination_status(store, d.name) for d in store.forwarding().destinations()]


def attempt_summary(attempt: Attempt) -> dict:
    """One journalled attempt, JSON-ready: times in ISO-8601, the answer's text (2 KB)."""
    return {
        "destination": attempt.destination,
        "position": attempt.position,
        "event_id": attempt.event_id,
        "number": attempt.number,
        "kind": attempt.kind,
        "replay_job": attempt.replay_job,
        "started_at": _iso(attempt.started_ms),
        "duration_ms": attempt.duration_ms,
        "status": attempt.status,
        "error": attempt.error,
        "response": attempt.response.decode("utf-8", errors="replace"),
        "next_attempt_at": _iso(attempt.next_ms),
    }


def event_attempts(store: EventStore, event_id: str, *, limit: int = 100) -> list[dict]:
    """The forwarding attempts of one event, to every destination, newest first."""
    return [attempt_summary(a) for a in store.forwarding().attempts(event_id=event_id, limit=limit)]


def failed_events(store: EventStore, name: str, *, limit: int = 100) -> list[dict]:
    """The events given up on for destination `name`, oldest first, with their last attempt.

    `last_attempt` is None when the journal no longer holds it. ForwardingError for an
    unknown destination.
    """
    _existing(store, name)
    state = store.forwarding()
    failed = []
    for item in state.items(name, FAILED, limit=limit):
        last = state.attempts(event_id=item.event_id, destination=name, limit=1)
        failed.append(
            {
                "position": item.position,
                "event_id": item.event_id,
                "attempts": item.attempts,
                "last_attempt": attempt_summary(last[0]) if last else None,
            }
        )
    return failed


def parse_time(value: str | datetime, now: datetime | None = None) -> str:
    """An ISO-8601 time or date, or `90m`/`24h`/`7d` before now, as the log writes times.

    Read as every query, page and command reads a time (`projections.timespec`); a text
    it cannot read is a ForwardingError with the same words.
    """
    if isinstance(value, datetime):
        value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    try:
        return timespec.instant(value, now)
    except InvalidQuery as exc:
        raise ForwardingError(str(exc)) from None


def replay(
    store: EventStore,
    name: str,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    type: str | None = None,
    asset: str | None = None,
    event_id: str | None = None,
    failed: bool = False,
    rate: float | None = None,
    dry_run: bool = False,
) -> int:
    """Queue the selected events again for the destination; returns how many were selected.

    Selection: the destination's types, and every filter given — received at or after
    `since` and before `until`, `type` (a shell pattern), `asset` (its URL, either
    scheme), `event_id`, `failed` (only deliveries given up on). The job is durable
    (its deliveries are rows) and throttled by `rate` per second on top of the
    destination's rate. An event already pending stays as it is, counted. `dry_run`
    counts without queueing.
    """
    d = _existing(store, name)
    if rate is not None and not rate > 0:
        raise ForwardingError("the rate must be above 0 per second")
    low = parse_time(since) if since is not None else None
    high = parse_time(until) if until is not None else None
    wanted_asset = "asset:" + asset_key(asset) if asset else None
    state = store.forwarding()

    def selected(event) -> bool:
        return (
            matches(d.types, event.type)
            and (low is None or event.received_at >= low)
            and (high is None or event.received_at < high)
            and (type is None or matches((type,), event.type))
            and (event_id is None or event.id == event_id)
            and (wanted_asset is None or ordering_key(event) == wanted_asset)
        )

    if failed:
        positions = [i.position for i in state.items(name, FAILED, limit=10**9)]
        sources = (
            store.get_positions(positions[i : i + _REPLAY_CHUNK])
            for i in range(0, len(positions), _REPLAY_CHUNK)
        )
    elif event_id is not None:
        found = store.get(event_id)
        sources = iter([[found]] if found else [])
    else:
        sources = store.read_batches(0, batch_size=_REPLAY_CHUNK)

    selection = {
        k: v
        for k, v in {
            "since": low,
            "until": high,
            "type": type,
            "asset": asset,
            "event": event_id,
            "failed": failed or None,
        }.items()
        if v is not None
    }
    job = None if dry_run else state.create_replay(name, json.dumps(selection), rate)
    count = 0
    for batch in sources:
        chosen = [Queued(e.position, e.id, ordering_key(e)) for e in batch if selected(e)]
        count += len(chosen)
        if job is not None and chosen:
            state.enqueue(name, chosen, due_ms=now_ms(), replay_job=job)
    if job is not None:
        state.set_replay_queued(job, count)
    return count
