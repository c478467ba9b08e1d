"""Loggers that import `logging` at their first use rather than with their module.

A read command (`ikledger timeline`) logs nothing unless something fails, and `logging`
brings `traceback`, `string` and `textwrap` with it: about 2.5 ms of a start-up that is
most of the command's time (docs/performance.md, "CLI start"). The modules on that path
keep `log = lazy_logger(name)` and call it as they would the `logging.Logger` it stands
for; the logger, its level and its handlers are `logging`'s own, looked up by name.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

_at_first_use: list[Callable[[], None]] = []


def when_logging(action: Callable[[], None]) -> None:
    """Run `action` (which configures `logging`) once `logging` is loaded.

    At once when it is; else just before a lazy logger is first used, so no record is
    emitted before it. (Every module that logs while a command runs loads `logging`
    through a lazy logger, or imports it, and is imported before the command runs.)
    """
    if "logging" in sys.modules:
        action()
    else:
        _at_first_use.append(action)


class LazyLogger:
    """`logging.getLogger(name)`, looked up (and `logging` imported) at the first call."""

    __slots__ = ("_logger", "name")

    def __init__(self, name: str):
        self.name = name
        self._logger: Any = None

    def __getattr__(self, attribute: str) -> Any:
        logger = self._logger
        if logger is None:
            import logging

            logger = self._logger = logging.getLogger(self.name)
            while _at_first_use:
                _at_first_use.pop(0)()
        return getattr(logger, attribute)


def lazy_logger(name: str) -> LazyLogger:
    """The logger `name`, importing `logging` only when it is first used."""
    return LazyLogger(name)
