"""Read models of the event log, kept in a SQLite file beside it.

Open with `open_projections(store, path)`, keep current with `ProjectionRunner(db).start()`
(or `.catch_up()`), query with the functions of `projections.queries`.
"""

from .cache import TimelineCache
from .db import ProjectionDB, default_projections_path, open_projections
from .framework import (
    AssetNotFound,
    InvalidQuery,
    MalformedBody,
    PoisonEvent,
    Projection,
    ProjectionDefect,
    ProjectionError,
    ReadModelUnavailable,
    RebuildBusy,
    RebuildFailed,
    Tables,
    UnknownProjection,
)
from .queries import (
    STUCK_AFTER,
    asset_positions,
    assets,
    projection_status,
    timeline,
    timeline_json,
    transformations,
)
from .runner import DEFAULT_PROJECTIONS, ProjectionRunner
from .video_timeline import TIMELINE, asset_key

__all__ = [
    "DEFAULT_PROJECTIONS",
    "STUCK_AFTER",
    "TIMELINE",
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
    "ReadModelUnavailable",
    "RebuildBusy",
    "RebuildFailed",
    "Tables",
    "TimelineCache",
    "UnknownProjection",
    "asset_key",
    "asset_positions",
    "assets",
    "default_projections_path",
    "open_projections",
    "projection_status",
    "timeline",
    "timeline_json",
    "transformations",
]


def __getattr__(name: str):
    # The rebuild machinery (worker pool, scratch files) loads only when it is used.
    if name == "Progress":
        from .rebuild import Progress

        return Progress
    raise AttributeError(f"module 'projections' has no attribute {name!r}")
