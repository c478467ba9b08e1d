"""Operations behind the CLI and the query API: listing, refusals, export and import of the log.

Each is a plain function over an open store, so the CLI stays a thin adapter and
tests call these directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

import orjson

from projections import InvalidQuery, to_time
from receiver.ingest.receive import new_event
from receiver.ingest.validation import InvalidEvent, normalise_time, parse_event
from store import GENESIS, Event, EventStore, NewEvent, Outcome, VerifyReport


class AdminError(Exception):
    """A user mistake in an admin command; the message is shown as is."""


def event_summary(event: Event) -> dict:
    """An event's metadata, JSON-ready (no body)."""
    return {
        "position": event.position,
        "id": event.id,
        "type": event.type,
        "created_at": event.created_at,
        "received_at": event.received_at,
        "scheme": event.scheme,
        "size": len(event.body),
    }


def refused_deliveries(
    store: EventStore, since: str | None = None, until: str | None = None, limit: int = 100
) -> dict:
    """The refused deliveries of [since, until), newest first, and their counts by reason.

    `since`/`until` are ISO-8601 times (None or "": unbounded), echoed normalised;
    raises InvalidQuery for a bad one or an empty range. GET /rejections answers this
    dict and the refused deliveries page draws it.
    """
    since = to_time(since) if since else None
    until = to_time(until) if until else None
    if since is not None and until is not None and since >= until:
        raise InvalidQuery("since must be before until")
    return {
        "since": since,
        "until": until,
        "counts": store.rejection_counts(since, until),
        "rejections": [d._asdict() for d in store.rejections(since, until, limit=limit)],
    }


def removal(store: EventStore, event: Event) -> dict | None:
    """What became of a pruned or erased event's body (when, how, why, its SHA-256 and
    size), JSON-ready; None while the body is there. The API and the pages show this."""
    if not event.pruned:
        return None
    record = store.erasure(event.position)
    if record is None:  # gone without a record: `verify` names it as tampering
        return {"pruned_on": None, "kind": None, "reason": "no erasure recorded"}
    return {
        "pruned_on": record.erased_at,
        "kind": record.kind,
        "reason": record.reason,
        "size": record.size,
        "body_sha256": record.body_sha256.hex(),
    }


def verify_log(store: EventStore) -> VerifyReport:
    """The store's chain check, then each row's id, type and created_at against its body.

    `type` and `created_at` are not chained, but they are derived from the body, so a
    changed column is caught too. Names the earliest bad position of either check.
    """
    report = store.verify()
    bad = report.first_bad_position
    until = None if report.ok or bad is None else bad - 1
    last = GENESIS  # the chain through the last event that checked out
    for batch in store.read_batches(0, until=until):
        for event in batch:
            if event.pruned:  # its columns stay; the store checked its recorded erasure
                last = event.chain
                continue
            found: tuple[str, ...]
            try:
                parsed = parse_event(event.body)
                found = (parsed.id, parsed.type, parsed.created_at)
            except InvalidEvent as exc:
                found = (exc.message,)
            if found != (event.id, event.type, event.created_at):
                problem = f"columns disagree with the body at position {event.position}"
                return VerifyReport(False, event.position - 1, event.position, problem, last)
            last = event.chain
    return report


def select_events(
    store: EventStore,
    *,
    types: Iterable[str] = (),
    ids: Iterable[str] = (),
    since: str | None = None,
    until: str | None = None,
    after: int = 0,
    limit: int | None = None,
) -> Iterator[Event]:
    """Events in position order, filtered by type, id and created_at range (inclusive)."""
    since = normalise_time(since) if since else None
    until = normalise_time(until) if until else None
    ids = set(ids)
    if ids:
        found = sorted((e for e in map(store.get, ids) if e is not None), key=lambda e: e.position)
        batches: Iterable[list[Event]] = [found]
    else:
        # The time range is filtered by the store (an index): a range holding
        # nothing reads nothing.
        batches = store.read_batches(
            after,
            batch_size=min(limit, 1000) if limit else 1000,
            types=list(types) or None,
            created_since=since,
            created_until=until,
        )
    emitted = 0
    for batch in batches:
        for event in batch:
            if types and event.type not in types:
                continue
            if since and event.created_at < since:
                continue
            if until and event.created_at > until:
                continue
            yield event
            emitted += 1
            if limit is not None and emitted >= limit:
                return


def export_events(store: EventStore, out: IO[bytes]) -> int:
    """Write every event as one JSON line, raw body included; returns the count.

    Bodies are UTF-8 JSON text (the receiver refuses anything else), so they are
    carried as strings and come back byte for byte. A pruned or erased event is
    written with `"body": null`, `"pruned": true` and its recorded `body_sha256` (hex)
    and `size`, so the file still says what the log held; `import` refuses it.
    """
    count = 0
    for batch in store.read_batches(0, batch_size=2000):
        for event in batch:
            record = event_summary(event)
            del record["size"]
            record["chain"] = event.chain.hex()
            if event.pruned:
                erased = store.erasure(event.position)
                record["body"] = None
                record["pruned"] = True
                record["body_sha256"] = erased.body_sha256.hex() if erased else None
                record["size"] = erased.size if erased else None
            else:
                record["body"] = event.body.decode("utf-8")
            out.write(orjson.dumps(record) + b"\n")
            count += 1
    return count


@dataclass
class ImportReport:
    stored: int = 0
    duplicate: int = 0
    conflict: int = 0


def import_events(store: EventStore, lines: Iterable[bytes], *, chunk: int = 500) -> ImportReport:
    """Append the events of an export, in file order; idempotent.

    Each body is validated again and is the authority for id, type and created_at.
    Raises AdminError naming the line of the first malformed record, or of the first
    pruned one (its body is gone, and the store appends bodies only); records before
    it stay imported (running the import again is safe).
    """
    report = ImportReport()
    pending: list[NewEvent] = []

    def flush() -> None:
        for result in store.append_many(pending):
            if result.outcome is Outcome.STORED:
                report.stored += 1
            elif result.outcome is Outcome.DUPLICATE:
                report.duplicate += 1
            else:
                report.conflict += 1
        pending.clear()

    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
            if record.get("pruned"):
                flush()
                raise AdminError(_pruned_record(number, record))
            body = record["body"].encode("utf-8")
            pending.append(
                new_event(
                    body,
                    scheme=str(record.get("scheme") or "import"),
                    received_at=_received_at(record.get("received_at")),
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            flush()
            raise AdminError(f"line {number}: not an ikledger export record ({exc})") from None
        except InvalidEvent as exc:
            flush()
            raise AdminError(f"line {number}: {exc.message}") from None
        if len(pending) >= chunk:
            flush()
    flush()
    return report


def _pruned_record(number: int, record: dict) -> str:
    return (
        f"line {number}: event {record.get('id')!r} (position {record.get('position')}) "
        f"was pruned in the exported log (body SHA-256 {record.get('body_sha256')}); "
        "its body is gone and cannot be imported: copy a pruned log with `ikledger backup`"
    )


def _received_at(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("received_at must be a string")
    return normalise_time(value)
