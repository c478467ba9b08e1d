"""The HTTP receiver, query API and command line of ikledger."""

from __future__ import annotations

import gc

# What a process imports at start-up lives until it exits, so the collections that the
# imports trigger free nothing and walk more objects each time: about 3 ms of the CPU
# of `ikledger timeline` (gc.callbacks). Paused here and in `receiver.cli` while they
# import; at the end of each module what they built is frozen (never walked again) and
# collection is back.
_collecting = gc.isenabled()
gc.disable()

from typing import TYPE_CHECKING

from receiver.config import Config, ConfigError

if _collecting:
    gc.freeze()  # what was imported stays out of the collections from now on
    gc.enable()

if TYPE_CHECKING:
    from receiver.http.app import create_app
    from receiver.runtime.wiring import get_app

__all__ = ["Config", "ConfigError", "create_app", "get_app"]


def __getattr__(name: str):
    # The app (Falcon, prometheus_client) loads on first use, not with the package: the
    # CLI's read commands never need it, and importing it was most of their start-up.
    if name == "create_app":
        from receiver.http.app import create_app

        return create_app
    if name == "get_app":
        from receiver.runtime.wiring import get_app

        return get_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
