"""The batch store on a real PostgreSQL server (REGISTRY_URL=postgresql://…): the same cases as on SQLite
(tests/unit/batch/test_store.py), each in a database of its own."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.batch.store import BatchStore
from appliance.registry.db import Dialect
from tests.integration.registry.postgres import Server, running_server
from tests.unit.batch.test_store import (  # noqa: F401 - collected here with the PostgreSQL store below
    test_a_batch_object_is_openais,
    test_a_result_file_with_a_given_id_is_written_once,
    test_an_answer_is_kept_once_and_counted,
    test_files_belong_to_their_owner_and_their_bytes_are_on_disk,
    test_finished_batches_are_never_claimed_and_moves_follow_the_rules,
    test_listing_is_newest_first_and_pages_with_after,
    test_only_one_runner_holds_a_batch_until_its_lease_lapses,
)

_NAMES = itertools.count(1)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as server:
        yield server


@pytest.fixture
def store(server: Server, tmp_path: Path) -> BatchStore:
    name = f"batch_{next(_NAMES)}"
    server.admin(f"CREATE DATABASE {name}")
    store = BatchStore.open(server.url(name), tmp_path / "batch")
    assert store.db.dialect is Dialect.POSTGRESQL
    return store
