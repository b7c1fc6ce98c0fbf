"""What every registry backend must do, as plain functions of a fresh store (SQLite in the unit tier,
a real PostgreSQL server in the integration tier run the same list)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from appliance.registry import migrations
from appliance.registry.db import RegistryError
from appliance.registry.states import Environment, Status
from appliance.registry.store import RegistryStore, RevisionKey, TransitionRefused

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def key(model_id: str = "tiny", digest: str = "m1", env: Environment = Environment.PRODUCTION) -> RevisionKey:
    return RevisionKey(model_id, env, "/models/tiny", "", digest, "e1")


def tables(store: RegistryStore) -> set[str]:
    with store.db.transaction(write=False) as tx:
        if tx.dialect.value == "sqlite":
            rows = tx.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'model_registry%'")
        else:
            rows = tx.execute("SELECT tablename AS name FROM pg_tables WHERE tablename LIKE 'model_registry%'")
    return {r["name"] for r in rows}


def migrations_up_and_down(store: RegistryStore) -> None:
    assert store.version() == 0
    assert not store.ready()
    assert store.migrate(now=T0) == [(1, True), (2, True), (3, True), (4, True)]
    assert store.version() == migrations.HEAD == 4 and store.ready()
    assert tables(store) == {
        "model_registry_entries",
        "model_registry_history",
        "model_registry_routes",
        "model_registry_requests",
        "model_registry_specs",
    }
    assert store.migrate() == []  # idempotent
    assert store.migrate(1) == [(4, False), (3, False), (2, False)]
    assert tables(store) == {"model_registry_entries", "model_registry_history"}
    assert store.version() == 1
    entry = store.record(key(), reason="deploy", now=T0)  # schema 1 works without the trigger
    assert entry.status is Status.PENDING
    assert store.migrate(0) == [(1, False)]
    assert store.version() == 0 and tables(store) == set()
    assert store.migrate() == [(1, True), (2, True), (3, True), (4, True)]  # and up again, three times in all
    assert store.entries() == []
    with pytest.raises(ValueError):
        migrations.plan(0, migrations.HEAD + 1)


def lifecycle_with_history(store: RegistryStore) -> None:
    store.migrate()
    entry = store.record(key(), reason="deploy from models.yaml", now=T0)
    assert (entry.status, entry.reason, entry.created_at) == (
        Status.PENDING,
        "deploy from models.yaml",
        entry.changed_at,
    )
    steps = [
        (Status.LOADING, "engine starting"),
        (Status.SMOKE_TESTING, "engine up"),
        (Status.READY, "smoke ok"),
        (Status.DISABLED, "operator"),
        (Status.READY, "enabled"),
    ]
    for minutes, (status, reason) in enumerate(steps, start=1):
        entry = store.transition(entry.id, status, reason=reason, now=T0 + timedelta(minutes=minutes))
        assert entry.status is status and entry.reason == reason
    assert entry.created_at < entry.changed_at
    history = store.history("tiny")
    assert [(e.from_status, e.to_status) for e in history] == [
        (None, Status.PENDING),
        (Status.PENDING, Status.LOADING),
        (Status.LOADING, Status.SMOKE_TESTING),
        (Status.SMOKE_TESTING, Status.READY),
        (Status.READY, Status.DISABLED),
        (Status.DISABLED, Status.READY),
    ]
    assert [e.reason for e in history][-1] == "enabled"
    assert store.history(entry_id=entry.id) == history
    store.record_health_check(entry.id, now=T0 + timedelta(hours=1))
    assert store.entry(entry.id).last_health_check.startswith("2026-12-04T13:00:00")  # type: ignore[union-attr]


def refused_transition_writes_nothing(store: RegistryStore) -> None:
    store.migrate()
    entry = store.record(key(), reason="deploy", now=T0)
    with pytest.raises(TransitionRefused, match="pending may change to failed, loading; not to ready"):
        store.transition(entry.id, Status.READY, reason="skip ahead", now=T0)
    assert store.entry(entry.id).status is Status.PENDING  # type: ignore[union-attr]
    assert len(store.history()) == 1
    with pytest.raises(RegistryError, match="no registry entry 999"):
        store.transition(999, Status.LOADING, reason="x", now=T0)


def same_revision_is_one_entry(store: RegistryStore) -> None:
    store.migrate()
    first = store.record(key(), reason="deploy", now=T0)
    assert store.record(key(), reason="deploy again", now=T0).id == first.id  # pending: returned as is
    store.transition(first.id, Status.LOADING, reason="load", now=T0)
    store.transition(first.id, Status.FAILED, reason="engine died: OOM", now=T0)
    again = store.record(key(), reason="retry", now=T0 + timedelta(minutes=5))
    assert (again.id, again.status, again.reason) == (first.id, Status.PENDING, "retry")
    other = store.record(key(digest="m2"), reason="new weights", now=T0 + timedelta(minutes=6))
    staging = store.record(key(env=Environment.STAGING), reason="stage", now=T0 + timedelta(minutes=7))
    assert len({first.id, other.id, staging.id}) == 3
    assert [e.id for e in store.entries("tiny")] == [first.id, other.id, staging.id]
    current = store.current("tiny")
    assert [(e.environment, e.id) for e in current] == [
        (Environment.PRODUCTION, other.id),
        (Environment.STAGING, staging.id),
    ]
    assert store.entries("other") == [] and store.current("other") == []


def history_is_append_only(store: RegistryStore) -> None:
    store.migrate()
    store.record(key(), reason="deploy", now=T0)
    for statement in ("UPDATE model_registry_history SET reason = 'rewritten'", "DELETE FROM model_registry_history"):
        with pytest.raises(RegistryError, match="append-only"):
            with store.db.transaction() as tx:
                tx.execute(statement)
    assert [e.reason for e in store.history()] == ["deploy"]


def database_checks_statuses(store: RegistryStore) -> None:
    store.migrate()
    entry = store.record(key(), reason="deploy", now=T0)
    with pytest.raises(RegistryError):
        with store.db.transaction() as tx:
            tx.execute("UPDATE model_registry_entries SET status = 'exploded' WHERE id = ?", (entry.id,))


CONTRACT: list[Callable[[RegistryStore], None]] = [
    migrations_up_and_down,
    lifecycle_with_history,
    refused_transition_writes_nothing,
    same_revision_is_one_entry,
    history_is_append_only,
    database_checks_statuses,
]


def manifest_digest_is_filled_once(store: RegistryStore) -> None:
    store.migrate()
    entry = store.record(key(digest=""), reason="deploy (weights still to download)", now=T0)
    filled = store.fill_manifest_digest(entry.id, "sha256:abc")
    assert filled is not None and filled.manifest_digest == "sha256:abc" and filled.status is entry.status
    assert store.fill_manifest_digest(entry.id, "sha256:other") is None, "never overwritten"
    assert store.entry(entry.id).manifest_digest == "sha256:abc"  # type: ignore[union-attr]
    assert store.record(key(digest="sha256:abc"), reason="next start", now=T0).id == entry.id
    assert len(store.history()) == 1, "not a status change"


CONTRACT.append(manifest_digest_is_filled_once)


def switch_moves_the_route_in_one_transaction(store: RegistryStore) -> None:
    store.migrate()
    old = store.record(key(digest="m1"), reason="serve started", now=T0)
    for status in (Status.LOADING, Status.READY):
        old = store.transition(old.id, status, reason="serve started", now=T0)
    store.set_route(old.id, "LLMServer:tiny", now=T0)
    new = store.record(key(digest="m2"), reason="deploy", now=T0)
    for status in (Status.LOADING, Status.SMOKE_TESTING):
        new = store.transition(new.id, status, reason="deploy", now=T0)
    later = T0 + timedelta(seconds=5)
    store.save_spec(new.id, {"id": "tiny", "source": "/models/tiny", "max_model_len": 512})
    store.save_spec(new.id, {"id": "tiny", "source": "/elsewhere"})  # kept as first written
    assert store.spec(new.id) == {"id": "tiny", "source": "/models/tiny", "max_model_len": 512}
    assert store.spec(old.id) is None
    switched = store.switch(new.id, old.id, f"LLMServer:tiny@{new.id}", reason="smoke test passed", now=later)
    assert switched.status is Status.READY
    assert store.entry(old.id).status is Status.ROLLED_BACK  # type: ignore[union-attr]
    route = store.routes(Environment.PRODUCTION)[("tiny", Environment.PRODUCTION)]
    assert (route.entry_id, route.deployment) == (new.id, f"LLMServer:tiny@{new.id}")
    with pytest.raises(TransitionRefused):  # ready → ready is refused: nothing moves, the route stays
        store.switch(old.id, new.id, "LLMServer:tiny", reason="again", now=later)
    assert store.routes()[("tiny", Environment.PRODUCTION)].entry_id == new.id
    assert store.entry(new.id).status is Status.READY  # type: ignore[union-attr]


def change_requests_are_claimed_once(store: RegistryStore) -> None:
    from appliance.registry.requests import ChangeRequests

    store.migrate()
    requests = ChangeRequests(store)
    first = requests.submit("deploy", Environment.STAGING, {"models_yaml": "models: []"}, requested_by="cli", now=T0)
    second = requests.submit("rollback", Environment.PRODUCTION, {"to": None}, model_id="tiny", now=T0)
    claimed = requests.claim(now=T0)
    assert claimed is not None and claimed.id == first.id and claimed.status == "running"
    assert claimed.payload == {"models_yaml": "models: []"}
    assert requests.claim(now=T0).id == second.id  # type: ignore[union-attr]
    assert requests.claim(now=T0) is None
    done = requests.finish(first.id, ok=True, result={"ok": True, "steps": []}, now=T0)
    assert done.finished and done.status == "done" and done.result == {"ok": True, "steps": []}
    assert requests.abandon_running(reason="serve restarted", now=T0) == 1
    assert requests.get(second.id).status == "failed"  # type: ignore[union-attr]


CONTRACT += [switch_moves_the_route_in_one_transaction, change_requests_are_claimed_once]


def events_after_pages_through_history(store: RegistryStore) -> None:
    store.migrate()
    assert store.last_event_id() == 0 and store.events_after(0) == []
    entry = store.record(key(), reason="deploy", now=T0)
    store.transition(entry.id, Status.LOADING, reason="engine starting", now=T0)
    other = store.record(key("small"), reason="deploy", now=T0)
    store.transition(entry.id, Status.FAILED, reason="smoke test failed", now=T0)
    history = store.history()
    assert store.last_event_id() == history[-1].id
    assert store.events_after(0) == history
    assert [(e.model_id, e.to_status) for e in store.events_after(history[1].id)] == [
        ("small", Status.PENDING),
        ("tiny", Status.FAILED),
    ]
    assert store.events_after(0, limit=1) == history[:1]
    assert store.events_after(history[-1].id) == []
    assert other.model_id == "small"


CONTRACT += [events_after_pages_through_history]


def retire_rolls_the_entry_back_and_deletes_only_its_route(store: RegistryStore) -> None:
    """A model a deploy removed: its entry rolled back with why (one never seen ready: failed), its route gone, the
    other models' routes and the history kept."""
    store.migrate()
    removed = store.record(key(), reason="serve started", now=T0)
    for status in (Status.LOADING, Status.READY):
        removed = store.transition(removed.id, status, reason="serve started", now=T0)
    store.set_route(removed.id, "LLMServer:tiny", now=T0)
    kept = store.record(key("small"), reason="serve started", now=T0)
    store.set_route(kept.id, "LLMServer:small", now=T0)
    loading = store.record(key("mid"), reason="serve started", now=T0)
    loading = store.transition(loading.id, Status.LOADING, reason="serve started", now=T0)
    store.set_route(loading.id, "LLMServer:mid", now=T0)
    retired = store.retire(removed.id, reason="deploy: removed (no longer in models.yaml)", now=T0)
    assert retired.status is Status.ROLLED_BACK and retired.reason == "deploy: removed (no longer in models.yaml)"
    assert store.retire(loading.id, reason="deploy: removed", now=T0).status is Status.FAILED
    assert set(store.routes()) == {("small", Environment.PRODUCTION)}
    assert [e.to_status for e in store.history("tiny")][-1] is Status.ROLLED_BACK


CONTRACT += [retire_rolls_the_entry_back_and_deletes_only_its_route]
