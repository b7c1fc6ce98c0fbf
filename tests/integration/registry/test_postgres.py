"""The registry on a real PostgreSQL server (REGISTRY_URL=postgresql://…): the same contract as on SQLite,
migrations up and down included, each case in a database of its own."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from appliance.registry.db import Dialect, RegistryError
from appliance.registry.store import RegistryStore
from tests.integration.registry.postgres import Server, running_server
from tests.unit.registry.contract import CONTRACT

_NAMES = itertools.count(1)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as server:
        yield server


@pytest.fixture
def store(server: Server) -> RegistryStore:
    name = f"registry_{next(_NAMES)}"
    server.admin(f"CREATE DATABASE {name}")
    store = RegistryStore.open(server.url(name))
    assert store.db.dialect is Dialect.POSTGRESQL
    return store


@pytest.mark.parametrize("check", CONTRACT, ids=lambda f: f.__name__)
def test_contract(store: RegistryStore, check: Callable[[RegistryStore], None]) -> None:
    check(store)


def test_a_server_that_is_not_there_is_a_registry_error(server: Server) -> None:
    store = RegistryStore.open(f"postgresql://nobody@/nothing?host={server.socket_dir}/missing")
    with pytest.raises(RegistryError, match="cannot connect to the registry postgresql:"):
        store.version()
