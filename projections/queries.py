"""Read-side queries: plain functions of a `ProjectionDB`, returning JSON-ready dicts.

One import for all of them, each defined by idea in its own module:

- `timeline_queries`: `timeline(db, asset_url, as_of=None)` and `timeline_json`, one
  asset's transformations and events (what `GET /timeline` sends).
- `listings`: `assets`, `transformations` (keyset-paginated, by status) and
  `asset_positions` (one page of an asset's log positions).
- `status`: `projection_status(db)`, checkpoint, lag and last error of each projection.
- `fields`: what they share, among it the one rule of `stuck` and a transformation's
  JSON object.

Each reads the served generation inside one read transaction, so a concurrent
rebuild's swap is seen whole or not at all.
"""

from .fields import STUCK_AFTER, to_time
from .listings import STATUSES, asset_positions, assets, transformations
from .status import projection_status
from .timeline_queries import read_timeline, timeline, timeline_json

__all__ = [
    "STATUSES",
    "STUCK_AFTER",
    "asset_positions",
    "assets",
    "projection_status",
    "read_timeline",
    "timeline",
    "timeline_json",
    "to_time",
    "transformations",
]
