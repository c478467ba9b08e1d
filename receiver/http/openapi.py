"""The OpenAPI 3.1 description of the whole HTTP API, served at /openapi.json."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from receiver.ui.openapi import PATHS as UI_PATHS

from .openapi_schemas import SCHEMAS, STATUS


def _version() -> str:
    try:
        return version("ikledger")
    except PackageNotFoundError:
        return "0"


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema_ref: str, description: str = "OK") -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def _query(name: str, description: str, schema: dict | None = None, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_LIMIT = _query(
    "limit",
    "Page size, 1 to 1000 (default 50).",
    {"type": "integer", "minimum": 1, "maximum": 1000},
)
_CURSOR = _query("cursor", "The `next_cursor` of the previous page.")
TIME_FORMS = "an ISO-8601 time, a date, or 90m, 24h, 7d before now (receiver.timespec)"
_UNAUTHORIZED = _error("Missing or wrong bearer token (only when IKLEDGER_READ_TOKEN is set).")
_BAD = _error("A query parameter is missing or malformed.")
_RETRY_AFTER = {
    "Retry-After": {"required": True, "description": "Seconds", "schema": {"type": "integer"}}
}
_UNAVAILABLE = {
    **_error(
        "Storage trouble, retry after Retry-After: `store_unavailable` (the log cannot be "
        "read or written now), `read_model_unavailable` (the read models cannot be read now)."
    ),
    "headers": _RETRY_AFTER,
}
_INTERNAL = _error(
    "`store_corrupt`: the log holds a record no retry will read (run `ikledger verify`); "
    "`internal_error`: anything else, named by request id in the server log."
)


def _read(summary: str, parameters: list, response: dict, *extra: tuple[str, dict]) -> dict:
    responses = {"200": response, "400": _BAD, "401": _UNAUTHORIZED}
    responses.update(dict(extra))
    return {
        "get": {
            "summary": summary,
            "security": [{"bearer": []}, {}],
            "parameters": parameters,
            "responses": responses,
        }
    }


def spec() -> dict:
    """The OpenAPI document; a test checks it against the app's routes and answers."""
    signature_headers = [
        {
            "name": name,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": text,
        }
        for name, text in (
            ("webhook-id", "Standard Webhooks message id."),
            ("webhook-timestamp", "Standard Webhooks Unix timestamp, whole seconds."),
            ("webhook-signature", "`v1,<base64 HMAC-SHA256>`; several separated by spaces."),
            ("x-ik-signature", "Legacy scheme: `t=<unix ms>,v1=<hex HMAC-SHA256>`."),
        )
    ]
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "ikledger",
            "version": _version(),
            "description": "Durable, tamper-evident log of ImageKit webhooks, and read models over it.",
        },
        "paths": {
            "/webhook": {
                "post": {
                    "summary": "Receive one signed ImageKit webhook delivery",
                    "description": "Verified over the exact bytes, validated, and committed durably before the 200.",
                    "parameters": signature_headers,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "responses": {
                        "200": _json(
                            "Receipt",
                            "Stored, or recognised as a redelivery (`duplicate`); a "
                            "redelivery with other bytes is also a `conflict`.",
                        ),
                        "400": _error("Body not UTF-8 JSON, or a required field missing or wrong."),
                        "401": _error(
                            "Signature missing, malformed, wrong or outside the time window."
                        ),
                        "413": _error("Body over the configured limit."),
                        "415": _error("Content-Type is not application/json."),
                        "503": {
                            **_error(
                                "`store_unavailable`: the event could not be made durable; "
                                "retry after Retry-After. `store_corrupt`: the log is damaged "
                                "and takes no more events until it is repaired."
                            ),
                            "headers": _RETRY_AFTER,
                        },
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and last log position",
                    "responses": {
                        "200": _json("Health"),
                        "503": {
                            **_json("Health", "The log or the read models are unusable."),
                            "headers": _RETRY_AFTER,
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
            "/timeline": _read(
                "Timeline of one asset: its transformations and their events",
                [
                    _query(
                        "asset",
                        "The source video URL (http and https are one asset).",
                        required=True,
                    ),
                    _query(
                        "as_of",
                        "A log position, or a created_at time (an ISO-8601 time, a date, or 90m, 24h, 7d "
                        "before now): the timeline as it stood then.",
                    ),
                ],
                _json("Timeline"),
                ("404", _error("Asset never seen.")),
            ),
            "/assets": _read(
                "Assets with counts per status, newest activity first",
                [
                    _query("status", "Only assets with a transformation in this status.", STATUS),
                    _query("since", f"Only assets active at or after this time: {TIME_FORMS}."),
                    _LIMIT,
                    _CURSOR,
                ],
                _json("AssetPage"),
            ),
            "/transformations": _read(
                "Transformations across assets, by status and error reason",
                [
                    _query("status", "Only this status.", STATUS),
                    _query("reason", "Only this error reason, e.g. encoding_failed."),
                    _query(
                        "since", f"Only those with an event at or after this time: {TIME_FORMS}."
                    ),
                    _LIMIT,
                    _CURSOR,
                ],
                _json("TransformationPage"),
            ),
            "/events": _read(
                "Event metadata in log order",
                [
                    _query("type", "Only these event types (comma-separated)."),
                    _query("asset", "Only events of this video asset."),
                    _query("since", f"Only events created at or after this time: {TIME_FORMS}."),
                    _query(
                        "q",
                        'Only events whose body holds these words (and "exact phrases"), '
                        "newest first; with at most one `type` and no `asset`.",
                    ),
                    _query(
                        "until", f"With `q`: only events created before this time: {TIME_FORMS}."
                    ),
                    _LIMIT,
                    _query(
                        "cursor",
                        "The `next_cursor` of the previous page (a log position; with `q`, "
                        "the page goes on below it).",
                        {"type": "integer", "minimum": 0},
                    ),
                ],
                _json("EventPage"),
                ("404", _error("Asset never seen.")),
            ),
            "/stats": _read(
                "The overview's counts, accepted-to-ready durations and buckets",
                [
                    _query(
                        "since", "From this ISO-8601 time, floored to 5 minutes (default: all)."
                    ),
                    _query(
                        "until", "Before this ISO-8601 time, raised to 5 minutes (default: all)."
                    ),
                    _query(
                        "bucket",
                        "Bucket size (default 1h).",
                        {"type": "string", "enum": ["5m", "1h", "1d"]},
                    ),
                ],
                _json("Stats"),
            ),
            "/rejections": _read(
                "Refused deliveries, newest first, and their counts by reason",
                [
                    _query("since", "Only refusals received at or after this ISO-8601 time."),
                    _query("until", "Only refusals received before this ISO-8601 time."),
                    _query(
                        "limit",
                        "At most this many refusals, 1 to 1000 (default 100).",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                    ),
                ],
                _json("RejectionPage"),
            ),
            "/events/{event_id}": _read(
                "One event: metadata, raw body and its deliveries",
                [
                    {
                        "name": "event_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                _json("Event"),
                ("404", _error("No such event.")),
            ),
            "/events/{event_id}/body": _read(
                "The raw body of one event, byte for byte",
                [
                    {
                        "name": "event_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                {
                    "description": "The body exactly as received",
                    "content": {"application/json": {}},
                },
                ("404", _error("No such event.")),
                ("410", _error("`body_pruned`: the body was pruned or erased (when, why).")),
            ),
            "/destinations": _read(
                "Every forwarding destination: settings, counts, lag, last outcomes",
                [],
                _json("DestinationList"),
            ),
            "/destinations/{name}": _read(
                "One forwarding destination's status and the events given up on",
                [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                _json("DestinationDetail"),
                ("404", _error("No such destination.")),
            ),
            "/events/{event_id}/proof": _read(
                "The event's inclusion proof against the latest checkpoint",
                [
                    {
                        "name": "event_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                _json("EventProof", "The proof `ikledger check-proof` checks offline"),
                ("404", _error("No such event.")),
                (
                    "409",
                    {
                        **_error(
                            "`not_in_checkpoint`: the event is newer than the latest "
                            "checkpoint; retry after Retry-After."
                        ),
                        "headers": _RETRY_AFTER,
                    },
                ),
            ),
            "/checkpoint": {
                "get": {
                    "summary": "The latest checkpoint: a C2SP signed note of the tree's size and root",
                    "description": "Public: it reveals a size and a hash only. Unsigned "
                    "(the bare checkpoint text) while no IKLEDGER_SIGNING_KEY is set.",
                    "responses": {
                        "200": {
                            "description": "The signed note, as kept",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "404": _error("`no_checkpoint`: none kept yet."),
                    },
                }
            },
            **UI_PATHS,
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            # Every route may fail unexpectedly; those that read storage answer 503 for it.
            operation["responses"].setdefault("500", _INTERNAL)
            if path not in ("/metrics", "/openapi.json"):
                operation["responses"].setdefault("503", _UNAVAILABLE)
    return document


class OpenAPIResource:
    def __init__(self):
        self.document = spec()

    def on_get(self, req, resp) -> None:
        resp.media = self.document
