"""Read models of the event log, kept in a SQLite file beside it.

Open with `open_projections(store, path)`, keep current with `ProjectionRunner(db).start()`
(or `.catch_up()`), query with the plain functions re-exported here (`timeline`,
`assets`, `transformations`, `search_transformations`, `projection_status`, …).

Every name below is imported from its module on first use, not with the package: a
command that only reads one timeline never loads the listings, the server's answer
cache or the rebuild machinery (worker pool, scratch files).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cache import TimelineCache
    from .db import ProjectionDB, default_projections_path, open_projections
    from .fields import STUCK_AFTER, to_time
    from .framework import (
        UNREADABLE,
        AssetNotFound,
        InvalidQuery,
        MalformedBody,
        PoisonEvent,
        Projection,
        ProjectionDefect,
        ProjectionError,
        ReadModelCorrupt,
        ReadModelOfAnotherLog,
        ReadModelUnavailable,
        RebuildBusy,
        RebuildFailed,
        Tables,
        UnknownProjection,
    )
    from .listings import asset_positions, assets, search_transformations, transformations
    from .rebuild import Progress
    from .runner import DEFAULT_PROJECTIONS, ProjectionRunner, chosen
    from .search import search_events
    from .stats_queries import stats
    from .status import projection_status
    from .timeline_queries import timeline, timeline_json
    from .video_timeline import TIMELINE, asset_key

# name: the module (of this package) that defines it
_MODULE_OF = {
    "DEFAULT_PROJECTIONS": "runner",
    "STUCK_AFTER": "fields",
    "TIMELINE": "video_timeline",
    "AssetNotFound": "framework",
    "InvalidQuery": "framework",
    "MalformedBody": "framework",
    "PoisonEvent": "framework",
    "Progress": "rebuild",
    "Projection": "framework",
    "ProjectionDB": "db",
    "ProjectionDefect": "framework",
    "ProjectionError": "framework",
    "ProjectionRunner": "runner",
    "ReadModelCorrupt": "framework",
    "ReadModelOfAnotherLog": "framework",
    "ReadModelUnavailable": "framework",
    "RebuildBusy": "framework",
    "RebuildFailed": "framework",
    "Tables": "framework",
    "UNREADABLE": "framework",
    "TimelineCache": "cache",
    "UnknownProjection": "framework",
    "asset_key": "video_timeline",
    "chosen": "runner",
    "asset_positions": "listings",
    "assets": "listings",
    "default_projections_path": "db",
    "open_projections": "db",
    "search_events": "search",
    "stats": "stats_queries",
    "projection_status": "status",
    "search_transformations": "listings",
    "timeline": "timeline_queries",
    "timeline_json": "timeline_queries",
    "to_time": "fields",
    "transformations": "listings",
}

__all__ = [
    "DEFAULT_PROJECTIONS",
    "STUCK_AFTER",
    "TIMELINE",
    "UNREADABLE",
    "AssetNotFound",
    "InvalidQuery",
    "MalformedBody",
    "PoisonEvent",
    "Progress",
    "Projection",
    "ProjectionDB",
    "ProjectionDefect",
    "ProjectionError",
    "ProjectionRunner",
    "ReadModelCorrupt",
    "ReadModelOfAnotherLog",
    "ReadModelUnavailable",
    "RebuildBusy",
    "RebuildFailed",
    "Tables",
    "TimelineCache",
    "UnknownProjection",
    "asset_key",
    "asset_positions",
    "assets",
    "chosen",
    "default_projections_path",
    "open_projections",
    "projection_status",
    "search_events",
    "search_transformations",
    "stats",
    "timeline",
    "timeline_json",
    "to_time",
    "transformations",
]


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'projections' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
