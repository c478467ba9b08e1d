"""The Jinja2 environment of the pages, and the timeline picture as a standalone SVG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape

from .layout import duration, layout


@cache
def environment() -> Environment:
    """Autoescaping on for .html and .svg templates (and strings rendered from them)."""
    env = Environment(
        loader=PackageLoader("receiver.ui", "templates"),
        autoescape=select_autoescape(["html", "svg", "xml"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = duration
    env.filters["clock"] = lambda t: "-" if not t else t.replace("T", " ").removesuffix("Z")
    env.tests["web_link"] = is_web_link
    env.filters["pretty"] = lambda v: orjson.dumps(v, option=orjson.OPT_INDENT_2).decode()
    return env


def is_web_link(url: object) -> bool:
    """Whether a URL from an event may become a link: http(s) only, never `javascript:`,
    `data:` or a scheme-relative `//host` (the CSP is a second guard, not the first)."""
    if not isinstance(url, str):
        return False
    scheme, sep, rest = url.strip().partition(":")
    return bool(sep) and scheme.lower() in ("http", "https") and rest.startswith("//")


@cache
def timeline_css() -> str:
    return resources.files("receiver.ui").joinpath("static/timeline.css").read_text("utf-8")


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)


def timeline_svg(
    timeline: dict,
    *,
    now: datetime | str | None = None,
    stuck_after: timedelta | float = 900,
    link: str | None = None,
    standalone: bool = True,
    window: tuple[str, str] | None = None,
    zoom: str | None = None,
) -> str:
    """The timeline picture as SVG text: for a file (`standalone`, styles inline) or a page.

    `link` prefixes each mark's event id to make it a link (None: no links); `window`
    zooms (see `layout`); `zoom` is the page's URL to which an axis label appends
    `&from=…&to=…` to zoom around it (None: labels are not links).
    """
    geometry = layout(
        timeline, now=now or datetime.now(UTC), stuck_after=stuck_after, window=window
    )
    return render(
        "timeline.svg",
        geometry=geometry,
        link=link,
        zoom=zoom,
        standalone=standalone,
        css=timeline_css() if standalone else "",
    )
