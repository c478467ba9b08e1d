"""The HTTP receiver, query API and command line of ikledger."""

from .app import create_app, get_app
from .config import Config, ConfigError

__all__ = ["Config", "ConfigError", "create_app", "get_app"]
