"""The registry on SQLite (the default): the backend contract, WAL mode, and the file under data/."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.registry.db import DEFAULT_REGISTRY_URL, Dialect, RegistryError, parse_registry_url
from appliance.registry.store import RegistryStore
from tests.unit.registry.contract import CONTRACT, T0, key


@pytest.fixture
def store(tmp_path: Path) -> RegistryStore:
    return RegistryStore.open(f"sqlite:///{tmp_path}/data/registry/registry.db")


@pytest.mark.parametrize("check", CONTRACT, ids=lambda f: f.__name__)
def test_contract(store: RegistryStore, check: Callable[[RegistryStore], None]) -> None:
    check(store)


def test_wal_mode_and_file_under_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = RegistryStore.open("")  # empty = the default
    assert not store.ready()
    assert not (tmp_path / "data").exists()  # reading never creates it
    store.migrate()
    path = tmp_path / "data" / "registry" / "registry.db"
    assert store.location.path == Path("data/registry/registry.db") and path.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.ready()


def test_a_reader_sees_committed_state_while_a_writer_holds_the_lock(store: RegistryStore) -> None:
    store.migrate()
    entry = store.record(key(), reason="deploy", now=T0)
    with store.db.transaction() as tx:  # the writer's transaction is open (BEGIN IMMEDIATE)
        tx.execute("UPDATE model_registry_entries SET reason = 'uncommitted' WHERE id = ?", (entry.id,))
        assert store.entry(entry.id).reason == "deploy"  # type: ignore[union-attr]  # WAL: readers do not wait


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data/registry.db", "a URL like"),
        ("sqlite://data/registry.db", "three slashes"),
        ("mysql://host/db", "not mysql://"),
        ("postgresql://user:hunter2@host/db", "no password in the URL"),
        ("postgresql://user@host", "database name is missing"),
    ],
)
def test_bad_urls_say_what_was_expected(url: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message) as err:
        RegistryStore.open(url)
    assert "hunter2" not in str(err.value)


def test_urls() -> None:
    assert parse_registry_url(DEFAULT_REGISTRY_URL).path == Path("data/registry/registry.db")
    assert parse_registry_url("sqlite:////var/lib/registry.db").path == Path("/var/lib/registry.db")
    pg = parse_registry_url("postgres://app@db.internal:5433/appliance")
    assert pg.dialect is Dialect.POSTGRESQL and pg.describe() == "postgresql:db.internal:5433/appliance"


def test_a_relative_path_is_resolved_when_the_store_is_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread that outlives a test kept writing to the next test's registry after a chdir (a flaky unit test)."""
    monkeypatch.chdir(tmp_path)
    store = RegistryStore.open("sqlite:///here/registry.db")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    store.migrate()
    assert (tmp_path / "here" / "registry.db").exists() and not (tmp_path / "elsewhere" / "here").exists()
