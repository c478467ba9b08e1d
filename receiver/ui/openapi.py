"""The pages' entries in /openapi.json: HTML for people, described so the test of the
document (every served route documented) and schemathesis cover them too."""

from __future__ import annotations


def _html(description: str) -> dict:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _q(name: str, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
            "description": description}  # fmt: skip


_LOGIN = {"description": "No session (IKLEDGER_READ_TOKEN set): to /ui/login, or after an action"}
_UNAVAILABLE = {
    **_html("The log or the read models cannot be read now; `Retry-After` says when"),
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
}
_FAILED = _html("An unexpected failure (logged on the server, never shown)")
_FORBIDDEN = _html("The form's CSRF token is missing or wrong, or it came from another origin")


def _page(summary: str, *params: dict, **extra: dict) -> dict:
    responses = {"200": _html("The page"), "303": _LOGIN, "500": _FAILED, "503": _UNAVAILABLE}
    responses.update(extra)
    return {"get": {"summary": summary, "parameters": list(params), "responses": responses}}


def _action(summary: str, *fields: str, **extra: dict) -> dict:
    properties = {name: {"type": "string", "minLength": 1} for name in ("csrf", *fields)}
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": properties,
                            "required": ["csrf"],
                        }
                    }
                },
            },
            "responses": {
                "303": {"description": "Done: to the next page"},
                "403": _FORBIDDEN,
                **extra,
            },
        }
    }


_BAD = {"400": _html("A query parameter is malformed")}
_MISSING = {"404": _html("No such asset or event")}

PATHS = {
    "/": {"get": {"summary": "Redirect to the web pages", "responses": {"303": _LOGIN}}},
    "/ui": _page(
        "Web page: assets, newest activity first, with counts per status",
        _q("status", "accepted, ready, error or stuck"),
        _q("since", "An ISO-8601 time, a date, or 90m, 24h, 7d before now"),
        _q("q", "Search: part of an asset URL, a request id, or an event id"),
        _q("limit", "Assets per page, 1-1000"),
        _q("cursor", "The next page's cursor"),
        **_BAD,
    ),
    "/ui/overview": _page(
        "Web page: the overview in charts (transformations, errors, durations, stuck)",
        _q("since", "ISO-8601 time, or relative: 90m, 24h, 7d (default 7d; empty: all time)"),
        _q("until", "ISO-8601 time (default now)"),
        _q("bucket", "5m, 1h or 1d"),
        **_BAD,
    ),
    "/ui/events": _page(
        "Web page: every event of any type, newest first, by type, time and body words",
        _q("type", "One event type"),
        _q("since", "ISO-8601 time, or relative: 90m, 24h, 7d"),
        _q("until", "ISO-8601 time"),
        _q("q", 'Words of the body, or "an exact phrase"'),
        _q("limit", "Events per page, 1-1000"),
        _q("cursor", "The next page's cursor (a log position)"),
        **_BAD,
    ),
    "/ui/rejections": _page(
        "Web page: refused deliveries newest first, with counts by reason",
        _q("since", "ISO-8601 time, or relative: 90m, 24h, 7d (default 24h; empty: all kept)"),
        _q("until", "ISO-8601 time (default now)"),
        **_BAD,
    ),
    "/ui/asset": _page(
        "Web page: one asset's timeline as a picture and a table",
        _q("url", "The asset URL"),
        _q("as_of", "A log position, or a created_at time (as `since` reads it)"),
        _q("from", "Zoom: the picture's start, a time (with `to`)"),
        _q("to", "Zoom: the picture's end, a time (with `from`)"),
        **_BAD,
        **_MISSING,
    ),
    "/ui/failures": _page("Web page: transformations in error by reason, and stuck ones"),
    "/ui/event": _page(
        "Web page: one event, its raw body and its deliveries",
        _q("id", "The event id"),
        **_BAD,
        **_MISSING,
    ),
    "/ui/event/raw": {
        "get": {
            "summary": "One event's body exactly as received, as text",
            "parameters": [_q("id", "The event id")],
            "responses": {
                "200": {"description": "The body", "content": {"text/plain": {}}},
                "303": _LOGIN,
                "500": _FAILED,
                "503": _UNAVAILABLE,
                **_MISSING,
            },
        }
    },
    "/ui/destinations": _page(
        "Web page: each forwarding destination's state, lag, counts and failed events",
        _q("retried", "The destination whose failed events were just queued again"),
        _q("queued", "How many were"),
        **_BAD,
    ),
    "/ui/destinations/retry": _action(
        "Queue a destination's failed events again (result on /ui/destinations)",
        "name",
        **{"400": _html("No such destination"), "500": _FAILED, "503": _UNAVAILABLE},
    ),
    "/ui/log": _page("Web page: the log, verify, and each read model's state"),
    "/ui/log/verify": _action("Recompute the hash chain now (result on /ui/log)"),
    "/ui/log/rebuild": _action("Start a rebuild of every read model (progress on /ui/log)"),
    "/ui/login": {
        **_page("Web page: ask for the read token", _q("next", "Where to go after")),
        **_action(
            "Log in with the read token",
            "token",
            "next",
            **{"401": _html("Not the read token")},
        ),
    },
    "/ui/logout": _action("End the session"),
}
