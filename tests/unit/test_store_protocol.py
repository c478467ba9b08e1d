"""Both backends offer every method of the store contract, with the same parameters."""

import inspect

import pytest

from store import EventStore
from store.postgres import PostgresStore
from store.sqlite import SQLiteStore

CONTRACT = {
    name: member
    for name, member in vars(EventStore).items()
    if callable(member) and not name.startswith("_")
}


@pytest.mark.parametrize("backend", [SQLiteStore, PostgresStore], ids=["sqlite", "postgres"])
@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_backend_implements_contract_method(backend, name):
    assert hasattr(backend, name), f"{backend.__name__} lacks {name}"
    wanted = inspect.signature(CONTRACT[name]).parameters
    offered = inspect.signature(getattr(backend, name)).parameters
    for param in wanted.values():
        assert param.name in offered, f"{backend.__name__}.{name} lacks parameter {param.name}"
        assert offered[param.name].kind == param.kind, f"{backend.__name__}.{name}({param.name})"


def test_contract_is_not_empty():
    assert {"append", "verify", "read_batches", "stats", "close"} <= set(CONTRACT)
