"""Web pages under /ui: assets, timelines as server-rendered SVG, failures, events, the log.

`add_routes(app, ...)` mounts them on the receiver's Falcon app (and redirects `/`);
`timeline_svg` renders the picture alone (what `ikledger timeline --svg` writes);
`layout` is the pure geometry of that picture.
"""

from .layout import layout
from .routes import add_routes
from .templating import timeline_svg

__all__ = ["add_routes", "layout", "timeline_svg"]
