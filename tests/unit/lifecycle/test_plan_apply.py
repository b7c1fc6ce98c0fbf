"""Planning a model change (pure) and applying it (against a fake of Ray Serve, the one thing faked here; the
registry is a real SQLite file)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from appliance.lifecycle.apply import Executor, GenerationError
from appliance.lifecycle.plan import Action, Mode, Need, Serving, Wanted, plan_deploy, plan_promote, plan_rollback
from appliance.registry.states import Environment, Status
from appliance.registry.store import RegistryStore

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
PROD = Environment.PRODUCTION
ONE = Need(1, 0)


def wanted(model: str = "a", engine: str = "e1", weights: str = "m1", refused: str = "", need: Need = ONE) -> Wanted:
    return Wanted(
        model,
        f"/models/{model}",
        "",
        weights,
        engine,
        {"id": model, "source": f"/models/{model}", "engine": engine},
        need,
        refused,
    )


class FakeServe:
    """Ray Serve as the executor sees it: deployments that start, get ready (or not), answer a smoke test."""

    def __init__(self) -> None:
        self.live: dict[str, Mapping[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_load: set[str] = set()
        self.fail_smoke: set[str] = set()
        self.fail_add: set[str] = set()

    def deployment_name(self, model_id: str, entry_id: int) -> str:
        return f"LLMServer:{model_id}@{entry_id}"

    def start(self, model_id: str, deployment: str, spec: Mapping[str, Any]) -> None:
        self.calls.append(("start", deployment))
        self.live[deployment] = spec

    def wait_ready(self, deployment: str, timeout_s: float) -> None:
        self.calls.append(("wait", deployment))
        if self.live[deployment].get("engine") in self.fail_load:
            raise GenerationError(f"{deployment} failed to start: the engine exited")

    def smoke(self, model_id: str, deployment: str) -> None:
        self.calls.append(("smoke", deployment))
        if self.live[deployment].get("engine") in self.fail_smoke:
            raise GenerationError("the smoke completion answered 500")

    def stop(self, deployment: str) -> None:
        self.calls.append(("stop", deployment))
        self.live.pop(deployment, None)

    def add(self, model_id: str, deployment: str) -> None:
        self.calls.append(("add", deployment))
        if self.live[deployment].get("engine") in self.fail_add:
            raise GenerationError("Ray Serve refused the application: ValueError")

    def remove(self, model_id: str, deployment: str) -> None:
        self.calls.append(("remove", deployment))
        if self.live[deployment].get("engine") in self.fail_add:
            raise GenerationError("the ingress did not drop the model within 60 s")
        self.live.pop(deployment)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.rollbacks: list[str] = []

    def transition(self, model_id: str, environment: Environment, status: Status) -> None:
        self.seen.append((model_id, status.value))

    def rolled_back(self, model_id: str, environment: Environment, reason: str) -> None:
        self.rollbacks.append(model_id)


@pytest.fixture
def store(tmp_path: Path) -> RegistryStore:
    store = RegistryStore.open(f"sqlite:///{tmp_path}/registry.db")
    store.migrate()
    return store


def serving_now(store: RegistryStore, serve: FakeServe, *models: Wanted) -> dict[str, Serving]:
    """What `serve` leaves after its start: each model ready, routed, its spec kept, running."""
    for model in models:
        entry = store.record(model.key(PROD), reason="serve started", now=T0)
        store.transition(entry.id, Status.LOADING, reason="serve started", now=T0)
        store.transition(entry.id, Status.READY, reason="running", now=T0)
        store.save_spec(entry.id, dict(model.spec))
        store.set_route(entry.id, f"LLMServer:{model.model_id}", now=T0)
        serve.live[f"LLMServer:{model.model_id}"] = model.spec
    return current(store)


def current(store: RegistryStore) -> dict[str, Serving]:
    return {
        model: Serving(store.entry(route.entry_id), route.deployment)  # type: ignore[arg-type]
        for (model, _env), route in store.routes(PROD).items()
    }


# --- the planner --------------------------------------------------------------------------------------------
def test_unchanged_models_are_kept_and_a_changed_one_starts_beside_when_there_is_room(store: RegistryStore) -> None:
    serving = serving_now(store, FakeServe(), wanted("a"), wanted("b"))
    plan = plan_deploy(PROD, [wanted("a"), wanted("b", engine="e2"), wanted("c")], serving, free=Need(2, 0))
    steps = {s.model_id: s for s in plan.steps}
    assert steps["a"].action is Action.KEEP and steps["a"].reason == "unchanged"
    assert (steps["b"].action, steps["b"].mode) == (Action.CHANGE, Mode.BESIDE)
    assert "changed: engine arguments" in steps["b"].reason
    assert (steps["c"].action, steps["c"].mode) == (Action.START, Mode.BESIDE), "a new model id, with room"
    staged = plan_deploy(Environment.STAGING, [wanted("c")], {}, free=Need(2, 0))
    assert staged.steps[0].action is Action.START, "staging may load a new model: nothing routes to it"


def test_without_room_for_both_a_change_replaces_and_says_so_up_front(store: RegistryStore) -> None:
    serving = serving_now(store, FakeServe(), wanted("a"))
    plan = plan_deploy(PROD, [wanted("a", weights="m2")], serving, free=Need(0, 0))
    [step] = plan.steps
    assert (step.action, step.mode) == (Action.CHANGE, Mode.REPLACE)
    assert "503 + Retry-After" in step.reason and "changed: weights" in step.reason
    no_room = plan_deploy(Environment.STAGING, [wanted("new")], {}, free=Need(0, 0)).steps[0]
    assert no_room.action is Action.REFUSE and "not enough free resources" in no_room.reason


def test_a_refused_load_and_a_model_left_out_of_models_yaml(store: RegistryStore) -> None:
    serving = serving_now(store, FakeServe(), wanted("a"), wanted("b"))
    plan = plan_deploy(
        PROD,
        [wanted("a", weights="m2", refused="model.safetensors: expected sha256:1, found sha256:2")],
        serving,
        free=Need(4, 0),
    )
    steps = {s.model_id: s for s in plan.steps}
    assert steps["a"].action is Action.REFUSE and "sha256:2" in steps["a"].reason
    assert steps["b"].action is Action.REMOVE and "no longer in models.yaml" in steps["b"].reason
    # staging: a model the models.yaml leaves out is left as it is (staging holds nothing running to remove)
    staged = plan_deploy(Environment.STAGING, [wanted("a")], serving, free=Need(4, 0))
    assert {s.model_id: s.action for s in staged.steps}["b"] is Action.KEEP


def test_promote_takes_the_staging_revision_as_it_is(store: RegistryStore) -> None:
    staged = wanted("a", engine="e2", weights="m2")
    entry = store.record(staged.key(Environment.STAGING), reason="deploy", now=T0)
    for status in (Status.LOADING, Status.SMOKE_TESTING, Status.READY):
        entry = store.transition(entry.id, status, reason="deploy", now=T0)
    serving = serving_now(store, FakeServe(), wanted("a"))
    plan = plan_promote("a", entry, staged.spec, serving["a"], ONE, Need(1, 0))
    [step] = plan.steps
    assert plan.kind == "promote" and plan.environment is PROD and step.action is Action.CHANGE
    assert step.wanted is not None and (step.wanted.manifest_digest, step.wanted.engine_digest) == ("m2", "e2")
    refused = plan_promote("a", None, None, serving["a"], ONE, Need(1, 0))
    assert refused.steps[0].action is Action.REFUSE and "--environment staging" in refused.steps[0].reason


def test_rollback_picks_the_newest_earlier_ready_revision_or_the_one_named(store: RegistryStore) -> None:
    serve = FakeServe()
    serving_now(store, serve, wanted("a"))
    executor = Executor(store, serve, sleep=lambda _s: None, clock=lambda: T0)
    executor.apply(plan_deploy(PROD, [wanted("a", engine="e2")], current(store), Need(1, 0)))
    executor.apply(plan_deploy(PROD, [wanted("a", engine="e3")], current(store), Need(1, 0)))
    entries, history = store.entries("a"), store.history("a")
    specs = {e.id: store.spec(e.id) or {} for e in entries}
    now = current(store)["a"]
    plan = plan_rollback("a", PROD, entries, history, specs, now, ONE, Need(1, 0))
    assert plan.steps[0].wanted.entry_id == entries[1].id  # type: ignore[union-attr]  # e2, not e1
    plan = plan_rollback("a", PROD, entries, history, specs, now, ONE, Need(1, 0), to=entries[0].id)
    assert plan.steps[0].wanted.engine_digest == "e1"  # type: ignore[union-attr]
    for to, says in ((now.entry.id, "serving now"), (999, "no entry 999")):
        step = plan_rollback("a", PROD, entries, history, specs, now, ONE, Need(1, 0), to=to).steps[0]
        assert step.action is Action.REFUSE and says in step.reason


# --- the executor -------------------------------------------------------------------------------------------
def test_a_good_change_starts_beside_smoke_tests_switches_then_stops_the_old(store: RegistryStore) -> None:
    serve, events = FakeServe(), Events()
    serving = serving_now(store, serve, wanted("a"), wanted("b"))
    ticks = iter(range(100))
    executor = Executor(
        store, serve, sleep=lambda _s: None, events=events, clock=lambda: T0, monotonic=lambda: float(next(ticks))
    )
    [keep, change] = executor.apply(plan_deploy(PROD, [wanted("a"), wanted("b", engine="e2")], serving, Need(1, 0)))
    assert keep.ok and keep.action == "keep"
    assert change.ok and change.mode == "beside" and set(change.seconds) == {"ready", "smoke", "switch"}
    new = f"LLMServer:b@{change.entry_id}"
    assert serve.calls == [("start", new), ("wait", new), ("smoke", new), ("stop", "LLMServer:b")]
    assert "LLMServer:a" in serve.live, "a change to b never touches a"
    route = store.routes(PROD)[("b", PROD)]
    assert (route.entry_id, route.deployment) == (change.entry_id, new)
    assert [e.to_status.value for e in store.history("b")][-5:] == [
        "pending",
        "loading",
        "smoke-testing",
        "ready",
        "rolled-back",
    ]
    assert (
        events.seen
        == [("b", "pending"), ("b", "loading"), ("b", "smoke-testing"), ("b", "ready"), ("b", "rolled-back")]
        and events.rollbacks == []
    )


def test_a_new_model_in_production_is_added_to_the_running_application_before_its_route(
    store: RegistryStore,
) -> None:
    serve = FakeServe()
    serving = serving_now(store, serve, wanted("a"))
    executor = Executor(store, serve, sleep=lambda _s: None, clock=lambda: T0)
    [keep, start] = executor.apply(plan_deploy(PROD, [wanted("a"), wanted("c")], serving, Need(1, 0)))
    assert keep.ok and start.ok and start.action == "start", start.reason
    new = f"LLMServer:c@{start.entry_id}"
    assert serve.calls[-4:] == [("start", new), ("wait", new), ("smoke", new), ("add", new)]
    assert store.routes(PROD)[("c", PROD)].deployment == new and "LLMServer:a" in serve.live
    # staging loads a new model too, but nothing routes to it: the ingress does not learn it
    staged = Executor(store, serve, sleep=lambda _s: None, clock=lambda: T0).apply(
        plan_deploy(Environment.STAGING, [wanted("d")], {}, Need(1, 0))
    )
    assert staged[0].ok and ("add", f"LLMServer:d@{staged[0].entry_id}") not in serve.calls

    serve.fail_add.add("e")
    everyone = [wanted("a"), wanted("c"), wanted("e", engine="e")]
    outcomes = executor.apply(plan_deploy(PROD, everyone, current(store), Need(1, 0)))
    [failed] = [o for o in outcomes if o.model_id == "e"]
    assert failed.rolled_back and "add it to the running application failed" in failed.reason
    assert f"LLMServer:e@{failed.entry_id}" not in serve.live and ("e", PROD) not in store.routes(PROD)
    assert store.entry(failed.entry_id).status is Status.FAILED  # type: ignore[arg-type, union-attr]


def test_a_model_left_out_of_models_yaml_is_removed_and_its_route_goes(store: RegistryStore) -> None:
    serve = FakeServe()
    serving = serving_now(store, serve, wanted("a"), wanted("b"))
    events = Events()
    executor = Executor(store, serve, events=events, sleep=lambda _s: None, clock=lambda: T0)
    [keep, removed] = executor.apply(plan_deploy(PROD, [wanted("a")], serving, Need(0, 0)))
    assert keep.action == "keep" and (removed.action, removed.ok) == ("remove", True), removed.reason
    assert serve.calls == [("remove", "LLMServer:b")] and "LLMServer:a" in serve.live
    assert ("b", PROD) not in store.routes(PROD) and ("a", PROD) in store.routes(PROD)
    entry = store.entry(removed.entry_id)  # type: ignore[arg-type]
    assert entry is not None and entry.status is Status.ROLLED_BACK and "removed" in entry.reason
    assert ("b", "rolled-back") in events.seen
    # deployed again later: a model with no route is started (and added to the running application)
    [_keep, again] = executor.apply(plan_deploy(PROD, [wanted("a"), wanted("b")], current(store), Need(2, 0)))
    assert (again.action, again.ok) == ("start", True) and ("add", f"LLMServer:b@{again.entry_id}") in serve.calls


def test_a_removal_the_ingress_does_not_take_leaves_the_model_served(store: RegistryStore) -> None:
    serve = FakeServe()
    serving = serving_now(store, serve, wanted("a"), wanted("b", engine="stuck"))
    serve.fail_add.add("stuck")
    executor = Executor(store, serve, sleep=lambda _s: None, clock=lambda: T0)
    [_keep, removed] = executor.apply(plan_deploy(PROD, [wanted("a")], serving, Need(0, 0)))
    assert not removed.ok and "not removed: the ingress did not drop the model" in removed.reason
    assert store.routes(PROD)[("b", PROD)].deployment == "LLMServer:b"
    assert store.entry(removed.entry_id).status is Status.READY  # type: ignore[arg-type, union-attr]


@pytest.mark.parametrize("failure", ["load", "smoke"])
def test_a_failed_generation_is_stopped_recorded_and_the_old_one_keeps_serving(
    store: RegistryStore, failure: str
) -> None:
    serve, events = FakeServe(), Events()
    serving = serving_now(store, serve, wanted("a"))
    (serve.fail_load if failure == "load" else serve.fail_smoke).add("bad")
    [outcome] = Executor(store, serve, sleep=lambda _s: None, events=events, clock=lambda: T0).apply(
        plan_deploy(PROD, [wanted("a", engine="bad")], serving, Need(1, 0))
    )
    assert not outcome.ok and outcome.rolled_back and "the old generation kept serving" in outcome.reason
    assert ("load failed" if failure == "load" else "smoke test failed") in outcome.reason
    assert serve.live.keys() == {"LLMServer:a"}, "the new generation is stopped, the old one untouched"
    route = store.routes(PROD)[("a", PROD)]
    assert route.deployment == "LLMServer:a" and store.entry(route.entry_id).status is Status.READY  # type: ignore[union-attr]
    failed = store.entry(outcome.entry_id)  # type: ignore[arg-type]
    assert failed is not None and failed.status is Status.FAILED and failure in failed.reason
    assert events.rollbacks == ["a"]


def test_a_failed_replace_starts_the_old_generation_again(store: RegistryStore) -> None:
    serve = FakeServe()
    serving = serving_now(store, serve, wanted("a"))
    serve.fail_load.add("bad")
    [outcome] = Executor(store, serve, sleep=lambda _s: None, clock=lambda: T0).apply(
        plan_deploy(PROD, [wanted("a", engine="bad")], serving, Need(0, 0))
    )
    assert outcome.mode == "replace" and outcome.rolled_back and "started again and serves" in outcome.reason
    assert serve.calls[0] == ("stop", "LLMServer:a") and serve.calls[-2:] == [
        ("start", "LLMServer:a"),
        ("wait", "LLMServer:a"),
    ]
    assert serve.live["LLMServer:a"]["engine"] == "e1"


def test_a_refused_load_touches_nothing_and_is_recorded_with_why(store: RegistryStore) -> None:
    serve = FakeServe()
    serving = serving_now(store, serve, wanted("a"))
    why = "files differ from its manifest: model.safetensors: expected sha256:aa, found sha256:bb"
    [outcome] = Executor(store, serve, sleep=lambda _s: None, clock=lambda: T0).apply(
        plan_deploy(PROD, [wanted("a", weights="m2", refused=why)], serving, Need(1, 0))
    )
    assert not outcome.ok and serve.calls == []
    assert store.entry(outcome.entry_id).status is Status.FAILED  # type: ignore[arg-type, union-attr]
    assert "sha256:bb" in store.history("a")[-1].reason
    assert store.routes(PROD)[("a", PROD)].deployment == "LLMServer:a"


def test_applying_the_same_models_again_three_times_changes_nothing(store: RegistryStore) -> None:
    serve = FakeServe()
    serving_now(store, serve, wanted("a"))
    executor = Executor(store, serve, sleep=lambda _s: None, clock=lambda: T0)
    executor.apply(plan_deploy(PROD, [wanted("a", engine="e2")], current(store), Need(1, 0)))
    calls, history = list(serve.calls), len(store.history())
    for _ in range(3):
        [outcome] = executor.apply(plan_deploy(PROD, [wanted("a", engine="e2")], current(store), Need(1, 0)))
        assert outcome.ok and outcome.action == "keep"
    assert serve.calls == calls and len(store.history()) == history


def test_a_revision_left_ready_by_an_earlier_start_can_be_rolled_back_to(store: RegistryStore) -> None:
    """make up with changed engine arguments: the earlier entry stays ready in the registry, not serving."""
    serve = FakeServe()
    serving_now(store, serve, wanted("a"))
    [earlier] = store.entries("a")
    serving_now(store, serve, wanted("a", engine="e2"))  # the next start: a new entry, routed
    serve.live.pop("LLMServer:a")
    serve.live["LLMServer:a"] = wanted("a", engine="e2").spec
    entries = store.entries("a")
    specs = {e.id: store.spec(e.id) or {} for e in entries}
    plan = plan_rollback("a", PROD, entries, store.history("a"), specs, current(store)["a"], ONE, Need(1, 0))
    assert plan.steps[0].wanted.entry_id == earlier.id  # type: ignore[union-attr]
    [outcome] = Executor(store, serve, sleep=lambda _s: None, clock=lambda: T0).apply(plan)
    assert outcome.ok and outcome.entry_id == earlier.id
    assert [e.to_status.value for e in store.history(entry_id=earlier.id)][-5:] == [
        "rolled-back",
        "pending",
        "loading",
        "smoke-testing",
        "ready",
    ]


def test_what_a_generation_needs_from_ray() -> None:
    from appliance.config.models import ModelSpec
    from appliance.config.settings import Accelerator
    from appliance.lifecycle.changes import need_of

    spec = ModelSpec(id="a", source="/m/a", tensor_parallel_size=2, replicas=3)
    assert need_of(spec, Accelerator.CPU) == Need(6, 0)
    assert need_of(spec, Accelerator.GPU) == Need(0, 6)
    scaled = ModelSpec.model_validate(
        {"id": "a", "source": "/m/a", "autoscaling": {"min_replicas": 2, "max_replicas": 4}}
    )
    assert need_of(scaled, Accelerator.GPU) == Need(0, 2)
    standby = ModelSpec(id="a", source="/m/a", replicas_standby=1)
    assert need_of(standby, Accelerator.CPU) == Need(4, 0)


def test_an_unexpected_error_from_ray_still_rolls_back(store: RegistryStore) -> None:
    class Broken(FakeServe):
        def smoke(self, model_id: str, deployment: str) -> None:
            raise RuntimeError("No event loop running")

    serve = Broken()
    serving = serving_now(store, serve, wanted("a"))
    [outcome] = Executor(store, serve, sleep=lambda _s: None, clock=lambda: T0).apply(
        plan_deploy(PROD, [wanted("a", engine="e2")], serving, Need(1, 0))
    )
    assert outcome.rolled_back and "smoke test failed: internal error RuntimeError" in outcome.reason
    assert serve.live.keys() == {"LLMServer:a"}
    assert store.entry(outcome.entry_id).status is Status.FAILED  # type: ignore[arg-type, union-attr]
