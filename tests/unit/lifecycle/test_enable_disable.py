"""`models disable|enable ID` in the registry, and what routing reads of it (DisabledModels)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.lifecycle.routing import DisabledModels
from appliance.registry.states import Environment, Status
from appliance.registry.store import RegistryStore, RevisionKey
from tests.helpers import make_config_dir, run_cli, set_line

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RegistryStore:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "0")
    make_config_dir(tmp_path, with_models=True)
    set_line(tmp_path / ".env", "ACCELERATOR", "cpu")
    store = RegistryStore.open("sqlite:///data/registry/registry.db")
    store.migrate()
    entry = store.record(
        RevisionKey("qwen2.5-0.5b-instruct", Environment.PRODUCTION, "Qwen/Qwen2.5-0.5B-Instruct", "", "", "sha256:e"),
        reason="serve started",
        now=T0,
    )
    store.transition(entry.id, Status.LOADING, reason="serve started", now=T0)
    store.transition(entry.id, Status.READY, reason="running", now=T0)
    return store


def test_disable_then_enable_with_reasons_in_the_history(
    store: RegistryStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run_cli(capsys, "models", "disable", "qwen2.5-0.5b-instruct", "--reason", "bad answers", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["entry"]["status"] == "disabled" and "404" in data["routing"]
    code, _out, err = run_cli(capsys, "models", "disable", "qwen2.5-0.5b-instruct")
    assert code == 1 and "already disabled" in err
    code, _out, err = run_cli(capsys, "models", "enable", "qwen2.5-0.5b-instruct")
    assert code == 0 and "is ready" in err
    assert [e.reason for e in store.history()][-2:] == [
        "disabled by the operator: bad answers",
        "enabled by the operator",
    ]
    code, _out, err = run_cli(capsys, "models", "enable", "nope")
    assert code == 2 and "no production revision" in err


def test_routing_reads_disabled_models_at_most_every_ttl(store: RegistryStore) -> None:
    clock = [0.0]
    routing = DisabledModels(store, ttl_s=1.0, clock=lambda: clock[0])
    model = "qwen2.5-0.5b-instruct"
    assert not routing.is_disabled(model)
    [entry] = store.current(model)
    store.transition(entry.id, Status.DISABLED, reason="operator", now=T0)
    assert not routing.is_disabled(model), "cached until the TTL passes"
    clock[0] = 1.0
    assert routing.is_disabled(model) and not routing.is_disabled("other")
    store.db.location.path.unlink()  # type: ignore[union-attr]  # no registry file (removed, not broken)
    clock[0] = 2.0
    assert not routing.is_disabled(model), "no registry at all: nothing is disabled"


def test_an_unreadable_registry_keeps_the_last_answer(
    store: RegistryStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [0.0]
    routing = DisabledModels(store, ttl_s=1.0, clock=lambda: clock[0])
    [entry] = store.current("qwen2.5-0.5b-instruct")
    store.transition(entry.id, Status.DISABLED, reason="operator", now=T0)
    assert routing.is_disabled("qwen2.5-0.5b-instruct")
    path = store.db.location.path
    assert path is not None
    path.write_bytes(b"this is not a database" * 100)
    for tick in (1.0, 2.0, 3.0):
        clock[0] = tick
        assert routing.is_disabled("qwen2.5-0.5b-instruct")
    assert caplog.text.count("model registry unreadable") == 1


def test_migrate_down_and_up_from_the_cli(store: RegistryStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run_cli(capsys, "models", "migrate", "--to", "1", "--json")
    assert code == 0 and json.loads(out)["steps"] == [
        {"version": 4, "direction": "down"},
        {"version": 3, "direction": "down"},
        {"version": 2, "direction": "down"},
    ]
    code, _out, err = run_cli(capsys, "models", "migrate")
    assert code == 0 and "schema version 4 (newest 4); up to 2, up to 3, up to 4" in err
    code, _out, err = run_cli(capsys, "models", "migrate")
    assert code == 0 and "nothing to do" in err
    code, _out, err = run_cli(capsys, "models", "migrate", "--to", "9")
    assert code == 2 and "from 0 to 4" in err
