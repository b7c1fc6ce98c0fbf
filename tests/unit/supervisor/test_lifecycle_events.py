"""The supervisor reports each model registry transition once: a log line and, with Datadog, a DogStatsD counter
and event, read back from a real UDP socket. The registry is a real SQLite file."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from appliance.registry.states import Status
from appliance.registry.store import RegistryStore
from appliance.supervisor.lifecycle_events import LifecycleEventsJob
from appliance.telemetry.dogstatsd import DatadogSink
from appliance.telemetry.notifier import SupervisorNotifier
from appliance.telemetry.supervisor_metrics import SupervisorMetrics
from tests.unit.registry.contract import T0, key
from tests.unit.telemetry.test_datadog import received


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def store(tmp_path: Path) -> RegistryStore:
    return RegistryStore.open(f"sqlite:///{tmp_path}/registry.db")


def job_for(store: RegistryStore, cursor: Path, sink: DatadogSink | None = None) -> LifecycleEventsJob:
    return LifecycleEventsJob(lambda: store, SupervisorNotifier(SupervisorMetrics(), sink), cursor)


def test_no_registry_yet_reports_nothing_and_creates_nothing(store: RegistryStore, tmp_path: Path) -> None:
    job = job_for(store, tmp_path / "cursor.json")
    assert job.run_once() == 0
    assert not (tmp_path / "registry.db").exists() and not (tmp_path / "cursor.json").exists()


def test_each_transition_is_reported_once_across_restarts(
    store: RegistryStore, tmp_path: Path, udp: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    store.migrate()
    old = store.record(key(), reason="serve started", now=T0)
    cursor = tmp_path / "supervisor" / "registry-events.json"
    sink = DatadogSink("127.0.0.1", udp.getsockname()[1], env="prod", extra_tags=[])
    assert job_for(store, cursor, sink).run_once() == 0  # a fresh supervisor starts at the newest row
    assert json.loads(cursor.read_text()) == {"reported_up_to": store.last_event_id()}

    new = store.record(key(digest="m2"), reason="models deploy", now=T0)
    for minutes, status in enumerate((Status.LOADING, Status.SMOKE_TESTING, Status.FAILED), start=1):
        why = "smoke completion failed: HTTP 500" if status is Status.FAILED else "models deploy"
        store.transition(new.id, status, reason=why, now=T0 + timedelta(minutes=minutes))
    with caplog.at_level(logging.INFO, logger="appliance.telemetry.notifier"):
        assert job_for(store, cursor, sink).run_once() == 4
    sink.close()
    text = received(udp)
    assert text.count("appliance.supervisor.model.transitions:1|c|#model:tiny,environment:production") == 4
    assert "status:failed" in text and "status:smoke-testing" in text
    assert "appliance: model tiny (production) failed" in text and "|t:error" in text
    assert f"entry {new.id}: smoke-testing -> failed: smoke completion failed: HTTP 500" in text
    failed = [r for r in caplog.records if "-> failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING

    # a restarted supervisor (a new job, the same cursor file) has nothing left to report
    assert job_for(store, cursor).run_once() == 0
    store.transition(old.id, Status.LOADING, reason="serve started", now=T0)
    assert job_for(store, cursor).run_once() == 1


def test_a_registry_with_fewer_rows_than_reported_restarts_from_its_end(store: RegistryStore, tmp_path: Path) -> None:
    store.migrate()
    store.record(key(), reason="serve started", now=T0)
    cursor = tmp_path / "cursor.json"
    cursor.write_text(json.dumps({"reported_up_to": 999}))  # e.g. the registry was restored from a backup
    job = job_for(store, cursor)
    assert job.run_once() == 0
    assert json.loads(cursor.read_text()) == {"reported_up_to": store.last_event_id()}


def test_an_unreachable_registry_is_warned_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "registry.db").mkdir()  # a directory where the file should be: sqlite cannot open it
    store = RegistryStore.open(f"sqlite:///{tmp_path}/registry.db")
    job = job_for(store, tmp_path / "cursor.json")
    with caplog.at_level(logging.WARNING):
        assert job.run_once() == 0 and job.run_once() == 0
    assert len([r for r in caplog.records if "registry unreadable" in r.getMessage()]) == 1
