"""The account-wide pages: the Overview, every Event, and the Refused deliveries.

As the other pages do, each reads the functions behind the JSON API and hands their
dicts to a template: the Overview `projections.stats` (GET /stats) and the stuck
transformations (GET /transformations?status=stuck), Events `projections.search_events`
(GET /events?q=), Refused deliveries `refused_deliveries` (GET /rejections). The charts
are drawn from those dicts by `charts`, with the same numbers in tables beside them.
"""

from __future__ import annotations

import falcon

import projections
from projections.stats_queries import BUCKETS
from receiver import timespec
from receiver.events import refused_deliveries

from .charts import percentile_lines, reason_bars, stacked_bars
from .pages import BadInput, Page, limit_param, query_string

# Quick ranges of the Overview: since → bucket.
OVERVIEW_RANGES = {"1h": "5m", "24h": "1h", "7d": "1d", "30d": "1d"}
DEFAULT_RANGE = "7d"
STUCK_SHOWN = 20
REFUSALS_SHOWN = 200


def _range(page: Page, req: falcon.Request, default: str | None) -> dict:
    """since (ISO or relative, as given), until, and both resolved for the queries."""
    since = req.get_param("since")
    since = default if since is None else since.strip()
    until = (req.get_param("until") or "").strip()
    return {
        "since": since,
        "until": until,
        "since_at": timespec.optional_instant(since or None, page.moment()),
        "until_at": timespec.optional_instant(until or None, page.moment()),
    }


class OverviewPage(Page):
    """GET /ui/overview: how the range went, in charts and numbers, and what is stuck now."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.errors_as_pages(req, resp):
            chosen = _range(self, req, DEFAULT_RANGE)
            bucket = req.get_param("bucket") or OVERVIEW_RANGES.get(chosen["since"], "1d")
            stats = projections.stats(
                self.views,
                chosen["since_at"],
                chosen["until_at"],
                bucket,
                now=self.now(),
                stuck_after=self.stuck_after,
            )
            stuck = projections.transformations(
                self.views,
                status="stuck",
                limit=STUCK_SHOWN,
                now=self.now(),
                stuck_after=self.stuck_after,
            )
            filters = {"since": chosen["since"], "until": chosen["until"], "bucket": bucket}
            self.show(
                req,
                resp,
                "overview.html",
                stats=stats,
                stuck=stuck["transformations"],
                more_stuck=bool(stuck["next_cursor"]),
                filters=filters,
                ranges=OVERVIEW_RANGES,
                buckets=list(BUCKETS),
                status_chart=stacked_bars(stats),
                reason_chart=reason_bars(stats["errors_by_reason"], what="errors"),
                duration_chart=percentile_lines(stats),
                json_link="/stats?"
                + query_string(
                    {"since": stats["since"], "until": stats["until"], "bucket": bucket}
                ),
                stuck_after=self.stuck_after,
            )


class EventsPage(Page):
    """GET /ui/events: every event of any type, newest first; by type, time and words."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.errors_as_pages(req, resp):
            chosen = _range(self, req, None)
            kind = req.get_param("type") or None
            text = (req.get_param("q") or "").strip()
            limit = limit_param(req)
            cursor = req.get_param("cursor") or None
            if cursor is not None and not (cursor.isascii() and cursor.isdigit()):
                raise BadInput("cursor must be a log position")
            found = projections.search_events(
                self.views,
                text or None,
                type=kind,
                since=chosen["since_at"],
                until=chosen["until_at"],
                limit=min(limit + 1, 1000),  # one more tells whether an older page exists
                after=int(cursor) if cursor else None,
            )
            filters = {"type": kind, "since": chosen["since"], "until": chosen["until"], "q": text}
            events = found[:limit]
            next_link = None
            if len(found) > limit or len(found) == limit == 1000:
                next_link = "/ui/events?" + query_string(
                    {**filters, "limit": req.get_param("limit"), "cursor": events[-1]["position"]}
                )
            self.show(
                req,
                resp,
                "events.html",
                events=events,
                types=sorted(self.store.type_counts()),
                filters=filters,
                next_link=next_link,
                first_link="/ui/events?" + query_string(filters) if cursor else None,
                json_link="/events?" + query_string({"q": text, "type": kind}) if text else None,
            )


class RejectionsPage(Page):
    """GET /ui/rejections: refused deliveries newest first, and counts by reason."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.errors_as_pages(req, resp):
            chosen = _range(self, req, "24h")
            result = refused_deliveries(
                self.store, chosen["since_at"], chosen["until_at"], REFUSALS_SHOWN
            )
            self.show(
                req,
                resp,
                "rejections.html",
                result=result,
                filters={"since": chosen["since"], "until": chosen["until"]},
                ranges=("1h", "24h", "7d", "30d"),
                reason_geometry=reason_bars(result["counts"], what="refusals"),
                limit=REFUSALS_SHOWN,
                json_link="/rejections?"
                + query_string({"since": result["since"], "until": result["until"]}),
            )
