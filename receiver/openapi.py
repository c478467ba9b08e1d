"""The OpenAPI 3.1 description of the whole HTTP API, served at /openapi.json."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


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


_STATUS = {"type": "string", "enum": ["accepted", "ready", "error", "stuck"]}
_LIMIT = _query(
    "limit",
    "Page size, 1 to 1000 (default 50).",
    {"type": "integer", "minimum": 1, "maximum": 1000},
)
_CURSOR = _query("cursor", "The `next_cursor` of the previous page.")
_UNAUTHORIZED = _error("Missing or wrong bearer token (only when IKLEDGER_READ_TOKEN is set).")
_BAD = _error("A query parameter is missing or malformed.")
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

_SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["title", "code"],
        "properties": {
            "title": {"type": "string"},
            "description": {"type": "string"},
            "code": {"type": "string", "description": "Stable machine-readable error code."},
        },
    },
    "Receipt": {
        "type": "object",
        "required": ["received", "id", "position", "duplicate"],
        "properties": {
            "received": {"const": True},
            "id": {"type": "string"},
            "position": {"type": "integer", "minimum": 1},
            "duplicate": {"type": "boolean"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
            "position": {"type": "integer"},
            "error": {"type": "string"},
            "write_error": {"type": "string"},
            "projections": {"type": "array", "items": {"type": "object"}},
        },
    },
    "EventSummary": {
        "type": "object",
        "required": ["position", "id", "type", "created_at", "received_at", "scheme", "size"],
        "properties": {
            "position": {"type": "integer"},
            "id": {"type": "string"},
            "type": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "received_at": {"type": "string", "format": "date-time"},
            "scheme": {"type": "string"},
            "size": {"type": "integer"},
        },
    },
    "Event": {
        "allOf": [
            {"$ref": "#/components/schemas/EventSummary"},
            {
                "type": "object",
                "required": ["chain", "body", "deliveries"],
                "properties": {
                    "chain": {"type": "string", "description": "Hex SHA-256 chain value."},
                    "body": {"type": "string", "description": "The raw body exactly as received."},
                    "deliveries": {"type": "array", "items": {"type": "object"}},
                },
            },
        ]
    },
    "EventPage": {
        "type": "object",
        "required": ["events", "next_cursor"],
        "properties": {
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/EventSummary"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "TimelineEvent": {
        "type": "object",
        "required": ["position", "id", "type", "created_at"],
        "properties": {
            "position": {"type": "integer"},
            "id": {"type": "string"},
            "type": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "Transformation": {
        "type": "object",
        "description": "`events` only in a timeline, not in the /transformations list.",
        "required": ["request_id", "status"],
        "properties": {
            "asset": {"type": "string"},
            "request_id": {"type": "string"},
            "request_url": {"type": ["string", "null"]},
            "kind": {"type": ["string", "null"]},
            "options": {"type": ["object", "null"]},
            "status": {
                **_STATUS,
                "description": "The latest terminal event's type (ready or error), else accepted;"
                " /transformations lists a stuck one as `stuck`.",
            },
            "stuck": {
                "type": "boolean",
                "description": "Still accepted, with no event for IKLEDGER_STUCK_AFTER seconds.",
            },
            "accepted_at": {**_NULLABLE_TIME, "description": "The earliest accepted event's."},
            "ready_at": {
                **_NULLABLE_TIME,
                "description": "The latest ready event's, as are output_url, video_metadata"
                " and timings.",
            },
            "error_at": {
                **_NULLABLE_TIME,
                "description": "The latest error event's, as is error_reason.",
            },
            "error_reason": {"type": ["string", "null"]},
            "attempts": {
                "type": "integer",
                "description": "Terminal events (ready + error) received: above 1, ImageKit"
                " reported this transformation more than once.",
            },
            "output_url": {"type": ["string", "null"]},
            "video_metadata": {"type": ["object", "null"]},
            "timings": {"type": ["object", "null"]},
            "first_at": _NULLABLE_TIME,
            "last_at": _NULLABLE_TIME,
            "event_count": {"type": "integer"},
            "accepted_to_ready_ms": {"type": ["integer", "null"]},
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/TimelineEvent"}},
        },
    },
    "Timeline": {
        "type": "object",
        "required": ["asset", "position", "transformations"],
        "properties": {
            "asset": {"type": "string"},
            "position": {
                "type": "integer",
                "description": "The log position this answer reflects.",
            },
            "transformations": {
                "type": "array",
                "items": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Transformation"},
                        {"required": ["events"]},
                    ]
                },
            },
        },
    },
    "AssetPage": {
        "type": "object",
        "required": ["assets", "next_cursor"],
        "properties": {
            "assets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["asset", "last_activity", "counts"],
                    "properties": {
                        "asset": {"type": "string"},
                        "first_at": {"type": "string"},
                        "last_activity": {"type": "string"},
                        "transformations": {"type": "integer"},
                        "events": {"type": "integer"},
                        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    },
                },
            },
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "TransformationPage": {
        "type": "object",
        "required": ["transformations", "next_cursor"],
        "properties": {
            "transformations": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Transformation"},
            },
            "next_cursor": {"type": ["string", "null"]},
        },
    },
}


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
    return {
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
                            "Receipt", "Stored, or recognised as a redelivery (`duplicate`)."
                        ),
                        "400": _error("Body not UTF-8 JSON, or a required field missing or wrong."),
                        "401": _error(
                            "Signature missing, malformed, wrong or outside the time window."
                        ),
                        "413": _error("Body over the configured limit."),
                        "415": _error("Content-Type is not application/json."),
                        "503": _error(
                            "The event could not be made durable; retry after Retry-After."
                        ),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and last log position",
                    "responses": {
                        "200": _json("Health"),
                        "503": _json("Health", "The log is unusable."),
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
                        "A log position or an ISO-8601 created_at time: the timeline as it stood then.",
                    ),
                ],
                _json("Timeline"),
                ("404", _error("Asset never seen.")),
            ),
            "/assets": _read(
                "Assets with counts per status, newest activity first",
                [
                    _query("status", "Only assets with a transformation in this status.", _STATUS),
                    _query("since", "Only assets active at or after this ISO-8601 time."),
                    _LIMIT,
                    _CURSOR,
                ],
                _json("AssetPage"),
            ),
            "/transformations": _read(
                "Transformations across assets, by status and error reason",
                [
                    _query("status", "Only this status.", _STATUS),
                    _query("reason", "Only this error reason, e.g. encoding_failed."),
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
                    _query("since", "Only events created at or after this ISO-8601 time."),
                    _LIMIT,
                    _query(
                        "cursor",
                        "The `next_cursor` of the previous page (a log position).",
                        {"type": "integer", "minimum": 0},
                    ),
                ],
                _json("EventPage"),
                ("404", _error("Asset never seen.")),
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
            ),
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


class OpenAPIResource:
    def __init__(self):
        self.document = spec()

    def on_get(self, req, resp) -> None:
        resp.media = self.document
