"""The PostgreSQL backend of the event log (imported only when selected)."""

from .role import receiver_role_sql
from .store import PostgresStore

__all__ = ["PostgresStore", "receiver_role_sql"]
