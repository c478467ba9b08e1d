"""The verifiable history over HTTP: GET /checkpoint (public) and GET /events/{id}/proof.

Both read what the catch-up child of `serve` keeps (`receiver.checkpoints.Checkpointer`):
a request process never holds the signing key. A proof is made against the latest kept
checkpoint, the one /checkpoint serves, so an auditor can compare the two.
"""

from __future__ import annotations

import falcon

from store import EventStore

from .errors import coded
from .queries import require_token


class CheckpointResource:
    """GET /checkpoint: the latest kept checkpoint, a signed note (public: a size and a hash)."""

    def __init__(self, store: EventStore):
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        note = self.store.latest_checkpoint()
        if note is None:
            raise coded(
                falcon.HTTPNotFound,
                "no_checkpoint",
                "no checkpoint yet: serve keeps one once the log has grown",
            )
        resp.data = note
        resp.content_type = falcon.MEDIA_TEXT


@falcon.before(require_token)
class ProofResource:
    """GET /events/{id}/proof: the event's inclusion proof against the latest checkpoint."""

    def __init__(self, store: EventStore, *, read_token: str | None, retry_after: int):
        self.store = store
        self.read_token = read_token
        self.retry_after = retry_after

    def on_get(self, req: falcon.Request, resp: falcon.Response, event_id: str) -> None:
        from store.tlog import ProofError
        from store.tlog.proofs import EventNotInLog, event_proof

        note = self.store.latest_checkpoint()
        try:
            if note is None:
                if self.store.get(event_id) is None:
                    raise EventNotInLog(event_id)
                raise ProofError("no checkpoint yet")
            resp.media = event_proof(self.store, event_id, note)  # reads the event once
        except EventNotInLog:
            raise coded(
                falcon.HTTPNotFound, "event_not_found", f"no event with id {event_id!r}"
            ) from None
        except ProofError as exc:
            raise coded(
                falcon.HTTPConflict,
                "not_in_checkpoint",
                f"{exc}: the event is in the next checkpoint, kept within "
                f"IKLEDGER_CHECKPOINT_EVERY ({self.retry_after} s)",
                headers={"Retry-After": str(self.retry_after)},
            ) from None
