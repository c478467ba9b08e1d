"""The schemas of the OpenAPI description: every JSON body the API answers with."""

from __future__ import annotations

STATUS = {"type": "string", "enum": ["accepted", "ready", "error", "stuck"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
# A child process of `ikledger serve` in GET /healthz (`receiver.runtime.children.Child`).
_CHILD_PROCESS = {
    "process": {"type": "string", "enum": ["child"]},
    "running": {"type": "boolean"},
    "pid": {"type": ["integer", "null"]},
    "restarts": {"type": "integer"},
    "last_exit": {"type": ["integer", "null"]},
}

SCHEMAS = {
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
        "required": ["received", "id", "position", "duplicate", "conflict"],
        "properties": {
            "received": {"const": True},
            "id": {"type": "string"},
            "position": {"type": "integer", "minimum": 1},
            "duplicate": {
                "type": "boolean",
                "description": "True for any redelivery of an id already in the log, with "
                "the same bytes or not (kept for compatibility): `position` is the first "
                "delivery's.",
            },
            "conflict": {
                "type": "boolean",
                "description": "True when the redelivery's bytes differ from the stored "
                "body: the log keeps the first body, the journal this one (shown beside it "
                "on the event page, `GET /ui/event?id=`).",
            },
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
            "read_model_error": {"type": "string"},
            "code": {
                "type": "string",
                "enum": ["store_corrupt", "read_model_unavailable"],
                "description": "Why a 503 will not pass by itself: the log is damaged "
                "(`ikledger verify`), or the read models are damaged, another log's or "
                "unreadable (`ikledger rebuild`).",
            },
            "projections": {"type": "array", "items": {"type": "object"}},
            "forwarder": {
                "type": "object",
                "description": "`ikledger serve`'s forwarding child process. It is restarted "
                "when it dies; the status stays `ok` meanwhile.",
                "properties": _CHILD_PROCESS,
            },
            "failing_destinations": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Forwarding destinations whose last attempt failed (the "
                "status stays `ok`: ingest goes on).",
            },
            "projector": {
                "type": "object",
                "description": "`ikledger serve`'s catch-up child process (absent when the "
                "read models are caught up by a thread of the server). It is restarted when "
                "it dies; the status stays `ok` meanwhile.",
                "properties": _CHILD_PROCESS,
            },
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
                "required": [
                    "chain",
                    "body",
                    "pruned",
                    "deliveries",
                    "conflicts",
                    "forwarding_attempts",
                ],
                "properties": {
                    "chain": {"type": "string", "description": "Hex SHA-256 chain value."},
                    "body": {
                        "type": ["string", "null"],
                        "description": "The raw body exactly as received; null once pruned.",
                    },
                    "pruned": {
                        "type": ["object", "null"],
                        "description": "When (pruned_on), how (kind: prune or erase) and why "
                        "(reason) the body was removed, with its size and hex body_sha256; "
                        "null while the body is there.",
                    },
                    "deliveries": {"type": "array", "items": {"type": "object"}},
                    "forwarding_attempts": {
                        "type": "array",
                        "description": "Attempts to forward it to the destinations, newest first.",
                        "items": {"$ref": "#/components/schemas/ForwardingAttempt"},
                    },
                    "conflicts": {
                        "type": "array",
                        "description": "Redeliveries of this id with other bytes, oldest "
                        "first: the journal row (`seq`, as in `deliveries`), when, and the body.",
                        "items": {
                            "type": "object",
                            "required": ["seq", "received_at", "body"],
                            "properties": {
                                "seq": {"type": "integer"},
                                "received_at": {"type": "string"},
                                "body": {"type": "string"},
                            },
                        },
                    },
                },
            },
        ]
    },
    "ForwardingAttempt": {
        "type": "object",
        "required": ["destination", "position", "event_id", "number", "kind", "started_at"],
        "properties": {
            "destination": {"type": "string"},
            "position": {"type": "integer"},
            "event_id": {"type": "string"},
            "number": {"type": "integer", "description": "1, 2, … since the event was queued"},
            "kind": {"type": "string", "enum": ["scheduled", "replay"]},
            "replay_job": {"type": ["integer", "null"]},
            "started_at": {"type": "string", "format": "date-time"},
            "duration_ms": {"type": "integer"},
            "status": {"type": ["integer", "null"], "description": "HTTP status, if answered"},
            "error": {
                "type": ["string", "null"],
                "description": "timeout, connection_refused, connection_reset, dns_error, "
                "tls_error, protocol_error, connection_error; body_pruned (the body went before "
                "delivery: nothing was sent)",
            },
            "response": {"type": "string", "description": "The answer's first 2 KB."},
            "next_attempt_at": _NULLABLE_TIME,
        },
    },
    "Destination": {
        "type": "object",
        "description": "A forwarding destination; its URL without credentials, never its secret.",
        "required": ["name", "url", "paused", "delivered", "pending", "failed", "lag_events"],
        "properties": {
            "name": {"type": "string"},
            "url": {"type": "string"},
            "state": {
                "type": "string",
                "enum": ["ok", "failing", "paused"],
                "description": "failing: its last attempt failed",
            },
            "paused": {"type": "boolean"},
            "pause_reason": {"type": ["string", "null"]},
            "signed_with": {"type": "string"},
            "types": {"type": "array", "items": {"type": "string"}},
            "timeout": {"type": "number"},
            "max_in_flight": {"type": "integer"},
            "rate": {"type": ["number", "null"]},
            "retry_schedule": {"type": "string"},
            "unordered": {"type": "boolean"},
            "delivered": {"type": "integer"},
            "pending": {"type": "integer"},
            "failed": {"type": "integer"},
            "lag_events": {"type": "integer"},
            "lag_seconds": {"type": "number"},
            "last_success": _NULLABLE_TIME,
            "last_failure": _NULLABLE_TIME,
            "last_failure_reason": {"type": ["string", "null"]},
            "forwarder": {"type": ["string", "null"], "description": "The lease holder"},
        },
    },
    "DestinationList": {
        "type": "object",
        "required": ["destinations"],
        "properties": {
            "destinations": {"type": "array", "items": {"$ref": "#/components/schemas/Destination"}}
        },
    },
    "DestinationDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/Destination"},
            {
                "type": "object",
                "required": ["failed_events"],
                "properties": {
                    "failed_events": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["position", "event_id", "attempts", "last_attempt"],
                            "properties": {
                                "position": {"type": "integer"},
                                "event_id": {"type": "string"},
                                "attempts": {"type": "integer"},
                                "last_attempt": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/ForwardingAttempt"},
                                        {"type": "null"},
                                    ]
                                },
                            },
                        },
                    }
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
                **STATUS,
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
    "Stats": {
        "type": "object",
        "description": (
            "Transformations count in the bucket of their latest event; `stuck` and "
            "`running` (accepted, not yet stuck) are judged now. Percentiles by the "
            "nearest-rank method over a fixed histogram of the durations: each is within "
            "1 % of the exact nearest-rank value (exact under 1 s)."
        ),
        "required": [
            "since",
            "until",
            "bucket",
            "events_by_type",
            "transformations",
            "errors_by_reason",
            "accepted_to_ready_ms",
            "buckets",
        ],
        "properties": {
            "since": _NULLABLE_TIME,
            "until": _NULLABLE_TIME,
            "bucket": {"type": "string", "enum": ["5m", "1h", "1d"]},
            "events_by_type": _COUNTS,
            "transformations": {
                "type": "object",
                "required": ["ready", "error", "stuck", "running"],
                "additionalProperties": {"type": "integer"},
            },
            "errors_by_reason": _COUNTS,
            "accepted_to_ready_ms": {"$ref": "#/components/schemas/Percentiles"},
            "buckets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["start", "events", "ready", "error", "stuck"],
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "events": {"type": "integer"},
                        "ready": {"type": "integer"},
                        "error": {"type": "integer"},
                        "stuck": {"type": "integer"},
                        "p50_ms": {"type": ["integer", "null"]},
                        "p95_ms": {"type": ["integer", "null"]},
                    },
                },
            },
            "transformations_by_kind": {"type": "object"},
            "transformations_by_format": {"type": "object"},
            "accepted_to_ready_ms_by_kind": {
                "type": "object",
                "additionalProperties": {"$ref": "#/components/schemas/Percentiles"},
            },
        },
    },
    "Percentiles": {
        "type": "object",
        "description": (
            "Milliseconds, nearest rank, each within 1 % of the exact value (exact under "
            "1 s); null when `count` is 0."
        ),
        "required": ["count", "p50", "p95", "p99"],
        "properties": {
            "count": {"type": "integer"},
            "p50": {"type": ["integer", "null"]},
            "p95": {"type": ["integer", "null"]},
            "p99": {"type": ["integer", "null"]},
        },
    },
    "RejectionPage": {
        "type": "object",
        "required": ["since", "until", "counts", "rejections"],
        "properties": {
            "since": _NULLABLE_TIME,
            "until": _NULLABLE_TIME,
            "counts": _COUNTS,
            "rejections": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["seq", "received_at", "status", "reason"],
                    "properties": {
                        "seq": {"type": "integer"},
                        "received_at": {"type": "string", "format": "date-time"},
                        "outcome": {"const": "rejected"},
                        "status": {"type": "integer"},
                        "reason": {"type": "string"},
                        "event_id": {"type": ["string", "null"]},
                        "position": {"type": "null"},
                        "size": {"type": ["integer", "null"]},
                        "remote_addr": {"type": ["string", "null"]},
                        "scheme": {"type": ["string", "null"]},
                    },
                },
            },
        },
    },
    "EventProof": {
        "type": "object",
        "description": "docs/verifiable-history.md; hashes in standard base64.",
        "required": [
            "leaf_index",
            "leaf_hash",
            "tree_size",
            "root",
            "path",
            "checkpoint",
            "event",
        ],
        "properties": {
            "leaf_index": {"type": "integer", "description": "position - 1"},
            "leaf_hash": {"type": "string"},
            "tree_size": {"type": "integer"},
            "root": {"type": "string"},
            "path": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The RFC 6962 audit path, leaf to root.",
            },
            "checkpoint": {"type": "string", "description": "The signed note proved against."},
            "event": {
                "type": "object",
                "required": ["position", "id", "type", "received_at_ms", "body_sha256"],
                "properties": {
                    "position": {"type": "integer"},
                    "id": {"type": "string"},
                    "type": {"type": "string"},
                    "received_at": {"type": "string"},
                    "received_at_ms": {"type": "integer"},
                    "body_sha256": {"type": "string"},
                },
            },
        },
    },
}
