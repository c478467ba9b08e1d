"""Every store backend the contract suite runs on, and the fixtures that open them.

`BACKENDS` maps a name to a factory: `factory(tmp_path)` is a context manager that
yields a fresh, empty store and closes it (and whatever it started) on exit. A backend
that needs a service registers `needs=` fixture names; `make_store` resolves them and
passes them as keyword arguments (a session-scoped server, say). A factory whose
service is missing calls `pytest.skip` with what to install.

    from tests.backends import make_store, store  # noqa: F401 -- pytest fixtures
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from store import EventStore, open_store


@dataclass(frozen=True)
class Backend:
    factory: Callable[..., AbstractContextManager[EventStore]]
    needs: tuple[str, ...] = ()  # fixture names passed to the factory as keywords


BACKENDS: dict[str, Backend] = {}


def register(name: str, factory, *, needs: tuple[str, ...] = ()) -> None:
    BACKENDS[name] = Backend(factory, needs)


@contextmanager
def sqlite_store(tmp_path: Path) -> Iterator[EventStore]:
    store = open_store(str(tmp_path / "log.db"), timeout=5.0)
    try:
        yield store
    finally:
        store.close()


register("sqlite", sqlite_store)
# Other backends register here, above the fixtures (their params are read at import):
# register("postgresql", postgres_store, needs=("postgres_server",)).


@contextmanager
def postgresql_store(tmp_path: Path, postgres_cluster) -> Iterator[EventStore]:
    """A fresh database on the session's PostgreSQL server (tests/postgres_cluster.py)."""
    postgres_cluster.ensure_running()
    name = postgres_cluster.create_database()
    try:
        store = open_store(postgres_cluster.url(name), timeout=5.0)
        try:
            yield store
        finally:
            store.close()
    finally:
        postgres_cluster.drop_database(name)


register("postgresql", postgresql_store, needs=("postgres_cluster",))


@pytest.fixture(params=sorted(BACKENDS))
def make_store(request, tmp_path) -> Iterator[Callable[[], EventStore]]:
    """A factory of fresh, empty stores of the parametrised backend; closes them all."""
    backend = BACKENDS[request.param]
    services = {name: request.getfixturevalue(name) for name in backend.needs}
    with ExitStack() as stack:
        count = 0

        def make() -> EventStore:
            nonlocal count
            count += 1
            folder = tmp_path / f"{request.param}-{count}"
            folder.mkdir()
            return stack.enter_context(backend.factory(folder, **services))

        yield make


@pytest.fixture
def store(make_store) -> EventStore:
    """One fresh, empty store of the parametrised backend."""
    return make_store()
