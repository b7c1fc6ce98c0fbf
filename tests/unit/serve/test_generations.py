"""Generations of a model in the one Serve application: stable versions, the port's bookkeeping of which
deployment serves each model (Ray Serve faked: only `status`, `get_deployment_handle` and the application run),
the ingress's routes, and the generations read back from the registry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.lifecycle.apply import GenerationError
from appliance.lifecycle.routing import ServingRoutes
from appliance.registry.states import Environment, Status
from appliance.registry.store import RegistryStore, RevisionKey
from appliance.serve.applier import generations_from_registry
from appliance.serve.generations import Generations, default_deployment, deployment_version, generation_deployment
from appliance.serve.lifecycle_port import RayServePort
from tests.helpers import make_config_dir, set_line

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def test_versions_and_names_are_pure() -> None:
    config = {"model_loading_config": {"model_id": "a"}, "engine_kwargs": {"max_model_len": 512}}
    assert deployment_version("LLMServer:a", config) == deployment_version("LLMServer:a", dict(config))
    assert deployment_version("LLMServer:a", config) != deployment_version("LLMServer:a@3", config)
    changed = {**config, "engine_kwargs": {"max_model_len": 256}}
    assert deployment_version("LLMServer:a", config) != deployment_version("LLMServer:a", changed)
    assert default_deployment("org/m.v1") == "LLMServer:org--m_v1"
    assert generation_deployment("a", 7) == "LLMServer:a@7" and "#" not in generation_deployment("a", 7)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    make_config_dir(tmp_path)
    set_line(tmp_path / ".env", "ACCELERATOR", "cpu")
    (tmp_path / "models.yaml").write_text("models:\n  - id: a\n    source: /m/a\n  - id: b\n    source: /m/b\n")
    return load_config(ConfigFiles(models=Path("models.yaml")), gpu_count=0)


class FakeServeApi:
    def __init__(self) -> None:
        self.deployments: dict[str, tuple[str, str]] = {}
        self.ingress_serves: set[str] = set()  # what the ingress answers it serves (after its reconfigure)

    def get_deployment_handle(self, name: str, app_name: str) -> Any:
        assert name == "ApplianceIngress" and app_name == "appliance"

        async def serves(model_id: str) -> bool:
            return model_id in self.ingress_serves

        return SimpleNamespace(serves=SimpleNamespace(remote=serves))

    def status(self) -> Any:
        deployments = {
            name: SimpleNamespace(status=status, message=message)
            for name, (status, message) in self.deployments.items()
        }
        return SimpleNamespace(applications={"appliance": SimpleNamespace(deployments=deployments)})


def port_with(config: Any) -> tuple[RayServePort, list[dict[str, str]], FakeServeApi]:
    runs: list[dict[str, str]] = []
    serve = FakeServeApi()

    def run(generations: Generations) -> None:  # what the application would hold: model → deployment
        holds = {m.id: generations.spec_of(m.id, config)[0] for m in config.models if m.id not in generations.removed}
        holds.update({name: f"beside:{model}" for name, (model, _s) in generations.beside.items()})
        holds.update({model: name for model, (name, _s) in generations.added(config).items()})
        runs.append(holds)

    return RayServePort(serve, config, Generations(), run, "appliance", poll_s=0.0), runs, serve


def test_beside_then_switch_keeps_the_other_model_and_drops_the_old(config: Any) -> None:
    port, runs, _serve = port_with(config)
    spec = config.model("a").model_dump(mode="json") | {"max_model_len": 256}
    port.start("a", "LLMServer:a@5", spec)
    assert runs[-1] == {"a": "LLMServer:a", "b": "LLMServer:b", "LLMServer:a@5": "beside:a"}
    port.stop("LLMServer:a")  # after the switch: the old generation goes, the new one serves a
    assert runs[-1] == {"a": "LLMServer:a@5", "b": "LLMServer:b"}
    assert port.generations.serving["a"][1].max_model_len == 256
    port.stop("LLMServer:gone")  # unknown (a staged generation already stopped): nothing happens
    assert len(runs) == 2


def test_replace_swaps_in_one_update_and_a_failed_one_is_undone(config: Any) -> None:
    port, runs, _serve = port_with(config)
    port.stop("LLMServer:a")  # replace: stopped by the start that follows, not before
    assert runs == []
    port.start("a", "LLMServer:a@6", config.model("a").model_dump(mode="json"))
    assert runs[-1] == {"a": "LLMServer:a@6", "b": "LLMServer:b"}
    port.stop("LLMServer:a@6")
    port.start("a", "LLMServer:a", config.model("a").model_dump(mode="json"))
    assert runs[-1] == {"a": "LLMServer:a", "b": "LLMServer:b"}


def test_wait_ready_reads_serves_status(config: Any) -> None:
    port, _runs, serve = port_with(config)
    serve.deployments["LLMServer:a@5"] = ("HEALTHY", "")
    port.wait_ready("LLMServer:a@5", 1.0)
    serve.deployments["LLMServer:a@5"] = (
        "DEPLOY_FAILED",
        "\nThe replica failed to start: ValueError: bad arg\nTraceback…",
    )
    with pytest.raises(GenerationError, match="did not start: The replica failed to start: ValueError: bad arg$"):
        port.wait_ready("LLMServer:a@5", 1.0)
    serve.deployments["LLMServer:a@5"] = ("UPDATING", "")
    with pytest.raises(GenerationError, match="not ready after 0 s"):
        port.wait_ready("LLMServer:a@5", 0.0)


def test_routes_and_generations_read_back_from_the_registry(config: Any) -> None:
    store = RegistryStore.open(config.settings.registry_url)
    store.migrate()
    clock = [0.0]
    routes = ServingRoutes(store, ttl_s=1.0, clock=lambda: clock[0])
    assert routes.deployment("a") is None
    entry = store.record(RevisionKey("a", Environment.PRODUCTION, "/m/a", "", "m", "e2"), reason="deploy", now=T0)
    for status in (Status.LOADING, Status.SMOKE_TESTING):
        entry = store.transition(entry.id, status, reason="deploy", now=T0)
    store.save_spec(entry.id, config.model("a").model_dump(mode="json") | {"max_model_len": 256})
    store.switch(entry.id, None, generation_deployment("a", entry.id), reason="smoke test passed", now=T0)
    assert routes.deployment("a") is None, "cached for a second"
    clock[0] = 1.0
    assert routes.deployment("a") == f"LLMServer:a@{entry.id}" and routes.deployment("b") is None
    generations = generations_from_registry(store, config)
    assert generations.serving["a"][0] == f"LLMServer:a@{entry.id}"
    assert generations.serving["a"][1].max_model_len == 256 and "b" not in generations.serving


def _graph(app: Any) -> dict[str, str]:
    from ray.serve._private.build_app import build_app as serve_build

    return {d.name: d.version for d in serve_build(app, name="appliance").deployments}


def test_the_application_graph_changes_only_the_named_generation(config: Any, tmp_path: Path) -> None:
    """Built as Serve builds it (no cluster): every deployment pinned, a generation beside, then switched."""
    from appliance.serve.builder import build_app

    set_line(tmp_path / ".env", "PII_ENABLED", "true")
    config = load_config(ConfigFiles(models=Path("models.yaml")), gpu_count=0)
    generations = Generations()

    def graph() -> dict[str, str]:
        return _graph(build_app(config, audit_path=str(tmp_path / "a.log"), secrets_path=None, generations=generations))

    first = graph()
    assert set(first) == {"LLMServer:a", "LLMServer:b", "ApplianceIngress", "PIIService"}
    assert graph() == first, "the same application twice: the same versions (Serve restarts nothing)"
    generations.beside["LLMServer:a@5"] = ("a", config.model("a").model_copy(update={"max_model_len": 256}))
    beside = graph()
    assert {k: v for k, v in beside.items() if k in first} == first and "LLMServer:a@5" in beside
    generations.serving["a"] = ("LLMServer:a@5", generations.beside.pop("LLMServer:a@5")[1])
    switched = graph()
    assert "LLMServer:a" not in switched and switched["LLMServer:a@5"] == beside["LLMServer:a@5"]
    assert {k: switched[k] for k in ("LLMServer:b", "ApplianceIngress", "PIIService")} == {
        k: first[k] for k in ("LLMServer:b", "ApplianceIngress", "PIIService")
    }


def test_a_new_model_is_added_beside_and_a_refused_application_leaves_it_beside(config: Any) -> None:
    port, runs, serve = port_with(config)
    serve.ingress_serves.add("c")
    spec = {"id": "c", "source": "/m/c"}
    port.start("c", "LLMServer:c@7", spec)
    assert runs[-1] == {"a": "LLMServer:a", "b": "LLMServer:b", "LLMServer:c@7": "beside:c"}
    port.add("c", "LLMServer:c@7")
    assert runs[-1] == {"a": "LLMServer:a", "b": "LLMServer:b", "c": "LLMServer:c@7"}
    port.stop("LLMServer:c@7")  # a replace of the added model: stopped by the start that follows
    port.start("c", "LLMServer:c@9", spec)
    assert runs[-1] == {"a": "LLMServer:a", "b": "LLMServer:b", "c": "LLMServer:c@9"}

    refusing, _runs, _serve = port_with(config)
    refusing.start("d", "LLMServer:d@8", {"id": "d", "source": "/m/d"})

    def refuse(_generations: Generations) -> None:
        raise ValueError("bad application")

    refusing._run = refuse
    with pytest.raises(GenerationError, match="refused the application"):
        refusing.add("d", "LLMServer:d@8")
    assert "d" not in refusing.generations.serving and "LLMServer:d@8" in refusing.generations.beside


def test_an_ingress_that_does_not_learn_the_model_fails_the_add(config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("appliance.serve.lifecycle_port.LEARN_TIMEOUT_S", 0.3)
    port, runs, _serve = port_with(config)  # its ingress never says it serves "c"
    port.start("c", "LLMServer:c@7", {"id": "c", "source": "/m/c"})
    with pytest.raises(GenerationError, match="did not learn the model"):
        port.add("c", "LLMServer:c@7")
    assert "c" not in port.generations.serving and "LLMServer:c@7" in port.generations.beside
    port.stop("LLMServer:c@7")  # the executor's rollback
    assert runs[-1] == {"a": "LLMServer:a", "b": "LLMServer:b"}


def test_a_model_added_to_the_running_application_reaches_the_ingress_in_its_user_config(
    config: Any, tmp_path: Path
) -> None:
    """Built as Serve builds it: the added model's engine is in the graph, the ingress keeps its version (Serve
    reconfigures it, never restarts it) and its user_config carries the model's card, limits and info."""
    from ray.serve._private.build_app import build_app as serve_build

    from appliance.config.models import ModelSpec
    from appliance.serve.builder import build_app
    from appliance.serve.live_models import parse_added

    generations = Generations()

    def built() -> dict[str, Any]:
        app = build_app(config, audit_path=str(tmp_path / "a.log"), secrets_path=None, generations=generations)
        return {d.name: d for d in serve_build(app, name="appliance").deployments}

    first = built()
    assert parse_added(first["ApplianceIngress"].user_config) == {}
    generations.serving["c"] = ("LLMServer:c@7", ModelSpec(id="c", source="/m/c", max_model_len=256, max_tokens_cap=64))
    added = built()
    assert set(added) == set(first) | {"LLMServer:c@7"}
    assert {name: added[name].version for name in first} == {name: d.version for name, d in first.items()}
    [(model, (deployment, card, limits, info))] = parse_added(added["ApplianceIngress"].user_config).items()
    assert (model, deployment, card["id"], limits.max_tokens, info.source) == ("c", "LLMServer:c@7", "c", 64, "/m/c")
    assert info.engine_kwargs["max_model_len"] == 256


def test_a_removed_model_is_dropped_by_the_ingress_before_its_engine_stops_and_can_come_back(config: Any) -> None:
    port, runs, serve = port_with(config)
    serve.ingress_serves.update({"a", "b"})
    asked: list[dict[str, str]] = []

    async def serves(model_id: str) -> bool:  # the ingress drops "a" once the application without it is applied
        asked.append(runs[-1])
        return model_id in serve.ingress_serves and "a" in runs[-1]

    serve.get_deployment_handle = lambda _n, app_name: SimpleNamespace(serves=SimpleNamespace(remote=serves))
    port.remove("a", "LLMServer:a")
    # first the ingress drops it while its engine still runs (beside), then the engine goes
    assert runs == [{"b": "LLMServer:b", "LLMServer:a": "beside:a"}, {"b": "LLMServer:b"}]
    assert asked == [runs[0]] and port.generations.removed == {"a"}
    with pytest.raises(GenerationError, match="does not serve a"):
        port.remove("a", "LLMServer:a")

    port.start("a", "LLMServer:a@9", {"id": "a", "source": "/m/a2"})  # deployed again later: served as added
    serve.ingress_serves.add("a")
    del serve.get_deployment_handle  # (the class's again: the ingress answers from ingress_serves)
    port.add("a", "LLMServer:a@9")
    assert port.generations.removed == set() and set(port.generations.added(config)) == {"a"}
    assert runs[-1] == {"a": "LLMServer:a@9", "b": "LLMServer:b"}


def test_an_ingress_that_does_not_drop_the_model_fails_the_removal_and_it_stays_served(
    config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("appliance.serve.lifecycle_port.LEARN_TIMEOUT_S", 0.3)
    port, runs, serve = port_with(config)
    serve.ingress_serves.update({"a", "b"})  # it keeps saying it serves "a"
    with pytest.raises(GenerationError, match="did not drop the model"):
        port.remove("a", "LLMServer:a")
    assert runs[-1] == {"a": "LLMServer:a", "b": "LLMServer:b"} and port.generations.removed == set()


def test_a_removed_model_leaves_the_graph_and_the_ingress_user_config_lists_it(config: Any, tmp_path: Path) -> None:
    from ray.serve._private.build_app import build_app as serve_build

    from appliance.serve.builder import build_app
    from appliance.serve.live_models import parse_added, parse_removed

    generations = Generations()

    def built() -> dict[str, Any]:
        app = build_app(config, audit_path=str(tmp_path / "a.log"), secrets_path=None, generations=generations)
        return {d.name: d for d in serve_build(app, name="appliance").deployments}

    first = built()
    generations.dropped.add("a")
    removed = built()
    assert set(removed) == set(first) - {"LLMServer:a"}
    assert removed["ApplianceIngress"].version == first["ApplianceIngress"].version  # reconfigured, not restarted
    assert parse_removed(removed["ApplianceIngress"].user_config) == {"a"}
    assert parse_added(removed["ApplianceIngress"].user_config) == {}


class LoopBoundHandle:
    """Like Serve's handle: its router is bound to the event loop it first ran in and fails once that loop is
    closed (what made every smoke test after the first fail with 'Event loop is closed')."""

    def __init__(self) -> None:
        self.loop: Any = None
        self.calls = 0

    def options(self, **_kw: Any) -> LoopBoundHandle:
        return self

    @property
    def completions(self) -> LoopBoundHandle:
        return self

    def remote(self, request: Any, _raw: Any) -> Any:
        import asyncio

        running = asyncio.get_running_loop()
        self.loop = self.loop or running
        if self.loop.is_closed() or self.loop is not running:
            raise RuntimeError("Event loop is closed")
        self.calls += 1

        async def chunks() -> Any:
            yield SimpleNamespace(error=None, choices=[SimpleNamespace(text=" ok")])

        return chunks()


def test_smoke_tests_after_the_first_still_run(config: Any) -> None:
    port, _runs, serve = port_with(config)
    handle = LoopBoundHandle()
    serve.get_deployment_handle = lambda _name, app_name: handle  # type: ignore[attr-defined]
    for _ in range(3):
        port.smoke("a", "LLMServer:a@5")
    assert handle.calls == 3


def test_the_gate_limits_follow_the_models_added_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.serve import live_models

    monkeypatch.setattr(live_models, "ADDED_CAPS", {})
    monkeypatch.setattr(live_models, "REMOVED", set())
    caps = live_models.with_added({"a": 100, "b": 200})
    live_models.ADDED_CAPS["c"] = 300
    assert dict(caps) == {"a": 100, "b": 200, "c": 300} and len(caps) == 3
    live_models.REMOVED.add("a")  # removed: the gate answers 404 for it, as for a model never served
    assert "a" not in caps and list(caps) == ["b", "c"]
    live_models.ADDED_CAPS["a"] = 50  # deployed again: its new limits
    assert caps["a"] == 50 and set(caps) == {"a", "b", "c"}
