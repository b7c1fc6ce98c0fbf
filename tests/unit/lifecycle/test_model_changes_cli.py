"""`models deploy|promote|rollback`: validated and queued by the CLI, applied by the serve head's applier (here
its ChangeApplier with a fake of Ray Serve; the registry, the manifests and the model files are real)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.lifecycle.changes import ChangeApplier
from appliance.lifecycle.deploys import engine_args_digest
from appliance.lifecycle.integrity import ModelToVerify, verify_model
from appliance.lifecycle.manifest import ManifestStore
from appliance.lifecycle.plan import Need
from appliance.registry.requests import ChangeRequests
from appliance.registry.states import Environment, Status
from appliance.registry.store import RegistryStore, RevisionKey
from appliance.serve.builder import engine_kwargs
from appliance.serve.generations import default_deployment
from tests.helpers import make_config_dir, run_cli, set_line
from tests.unit.lifecycle.conftest import write_model
from tests.unit.lifecycle.test_plan_apply import FakeServe

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
PROD = Environment.PRODUCTION


class FakePort(FakeServe):
    def free(self) -> Need:
        return Need(4, 0)

    def running(self, deployment: str) -> bool:
        return deployment in self.live

    def exists(self, deployment: str) -> bool:
        return deployment in self.live


def models_yaml(root: Path, source: Path, max_model_len: int = 512) -> None:
    (root / "models.yaml").write_text(
        f"models:\n  - id: tiny\n    source: {source}\n    max_model_len: {max_model_len}\n"
    )


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RegistryStore, FakePort, Path]:
    """What serve leaves after `make up`: tiny verified (its manifest written), ready (or, param, still loading:
    a plain `serve` returns before it could record ready), routed, its spec kept."""
    last = getattr(request, "param", Status.READY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "0")
    make_config_dir(tmp_path)
    set_line(tmp_path / ".env", "ACCELERATOR", "cpu")
    model = write_model(tmp_path / "models" / "tiny")
    models_yaml(tmp_path, model)
    config = load_config(ConfigFiles(models=Path("models.yaml")), gpu_count=0)
    [spec] = config.models
    store = RegistryStore.open(f"sqlite:///{tmp_path}/data/registry/registry.db")  # the CLI's, by its full path
    store.migrate()
    verified = verify_model(
        ModelToVerify("tiny", str(model), None, False),
        ManifestStore(Path(config.settings.registry_manifest_dir)),
        now="t0",
    )
    key = RevisionKey("tiny", PROD, str(model), "", verified.manifest_digest, engine_args_digest(engine_kwargs(spec)))
    entry = store.record(key, reason="serve started", now=T0)
    for status in (Status.LOADING, Status.READY)[: 2 if last is Status.READY else 1]:
        store.transition(entry.id, status, reason="serve started", now=T0)
    store.save_spec(entry.id, spec.model_dump(mode="json"))
    store.set_route(entry.id, default_deployment("tiny"), now=T0)
    port = FakePort()
    port.live[default_deployment("tiny")] = spec.model_dump(mode="json")
    return store, port, model


_THREADS: list[tuple[threading.Thread, threading.Event]] = []


def apply_next(store: RegistryStore, port: FakePort) -> threading.Thread:
    """The serve head's loop, once: wait for a request, apply it, record the outcome."""
    stop = threading.Event()
    config = load_config(ConfigFiles(models=Path("models.yaml")), gpu_count=0)

    def loop() -> None:
        requests = ChangeRequests(store)
        while not stop.is_set():
            request = requests.claim(now=T0)
            if request is not None:
                result = ChangeApplier(config, store, port).handle(request)
                requests.finish(request.id, ok=result["ok"], result=result, now=T0)
                return
            stop.wait(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    _THREADS.append((thread, stop))
    return thread


@pytest.fixture(autouse=True)
def _stop_appliers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Stops the test's applier threads before monkeypatch undoes the test's chdir: a thread still running in
    the old working directory would open the relative registry path there (and the next test's)."""
    yield
    while _THREADS:
        thread, stop = _THREADS.pop()
        stop.set()
        thread.join(10)


def test_deploy_of_tampered_weights_is_refused_and_the_old_generation_serves(
    stack: tuple[RegistryStore, FakePort, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, port, model = stack
    (model / "model.safetensors").write_bytes(b"not the weights the manifest lists")
    applier = apply_next(store, port)
    code, out, _err = run_cli(capsys, "models", "deploy", "--json", "--timeout", "30")
    applier.join(5)
    result = json.loads(out)["request"]
    assert code == 1 and result["status"] == "failed"
    [outcome] = result["result"]["outcomes"]
    assert outcome["action"] == "refuse" and "model.safetensors: expected sha256:" in outcome["reason"]
    assert port.calls == [], "nothing reached Ray"
    assert store.routes(PROD)[("tiny", PROD)].deployment == default_deployment("tiny")
    assert "model.safetensors: expected sha256:" in store.history("tiny")[-1].reason
    assert store.history("tiny")[-1].to_status is Status.FAILED


def test_deploy_of_a_changed_engine_argument_switches_then_rollback_goes_back(
    stack: tuple[RegistryStore, FakePort, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, port, model = stack
    models_yaml(Path.cwd(), model, max_model_len=256)
    applier = apply_next(store, port)
    code, out, err = run_cli(capsys, "models", "deploy", "--timeout", "30")
    applier.join(5)
    assert code == 0 and "applied" in err and "beside" in out
    route = store.routes(PROD)[("tiny", PROD)]
    assert route.deployment == f"{default_deployment('tiny')}@{route.entry_id}"
    assert port.live[route.deployment]["max_model_len"] == 256 and default_deployment("tiny") not in port.live

    applier = apply_next(store, port)
    code, out, _err = run_cli(capsys, "models", "rollback", "tiny", "--json", "--timeout", "30")
    applier.join(5)
    assert code == 0, out
    back = store.routes(PROD)[("tiny", PROD)]
    assert back.entry_id != route.entry_id and port.live[back.deployment]["max_model_len"] == 512
    assert store.entry(route.entry_id).status is Status.ROLLED_BACK  # type: ignore[union-attr]


def _with_second(root: Path, source: Path, max_model_len: int = 512) -> None:
    models_yaml(root, source)
    with (root / "models.yaml").open("a") as f:
        f.write(f"  - id: tiny2\n    source: {source}\n    max_model_len: {max_model_len}\n")


def test_a_new_model_is_added_then_changed_and_rolled_back_though_the_head_started_without_it(
    stack: tuple[RegistryStore, FakePort, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, port, model = stack
    _with_second(Path.cwd(), model)
    applier = apply_next(store, port)
    code, out, err = run_cli(capsys, "models", "deploy", "--json", "--timeout", "30")
    applier.join(5)
    assert code == 0, out + err
    outcomes = {o["model"]: o for o in json.loads(out)["request"]["result"]["outcomes"]}
    assert (outcomes["tiny"]["action"], outcomes["tiny2"]["action"]) == ("keep", "start")
    added = store.routes(PROD)[("tiny2", PROD)]
    assert ("add", added.deployment) in port.calls and added.deployment in port.live

    _with_second(Path.cwd(), model, max_model_len=256)
    applier = apply_next(store, port)
    code, out, _err = run_cli(capsys, "models", "deploy", "--timeout", "30")
    applier.join(5)
    assert code == 0 and store.routes(PROD)[("tiny2", PROD)].entry_id != added.entry_id, out

    models_yaml(Path.cwd(), model)  # the head started without tiny2: its spec comes from the registry
    applier = apply_next(store, port)
    _with_second(Path.cwd(), model, max_model_len=256)  # the operator's models.yaml names it (the CLI checks)
    code, out, _err = run_cli(capsys, "models", "rollback", "tiny2", "--timeout", "30")
    applier.join(5)
    assert code == 0, out
    back = store.routes(PROD)[("tiny2", PROD)]
    assert port.live[back.deployment]["max_model_len"] == 512


def test_a_route_to_a_deployment_serve_no_longer_has_is_not_kept_as_unchanged(
    stack: tuple[RegistryStore, FakePort, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`make up` without a model `models deploy` had added: its route stays in the registry, its deployment is
    gone; deploying it again starts it instead of calling it unchanged."""
    store, port, model = stack
    _with_second(Path.cwd(), model)
    applier = apply_next(store, port)
    assert run_cli(capsys, "models", "deploy", "--timeout", "30")[0] == 0
    applier.join(5)
    port.live.pop(store.routes(PROD)[("tiny2", PROD)].deployment)  # what the restart left
    applier = apply_next(store, port)
    code, out, _err = run_cli(capsys, "models", "deploy", "--json", "--timeout", "30")
    applier.join(5)
    outcomes = {o["model"]: o for o in json.loads(out)["request"]["result"]["outcomes"]}
    assert code == 0 and outcomes["tiny2"]["action"] == "start" and outcomes["tiny"]["action"] == "keep", outcomes


def test_bad_input_is_refused_before_anything_is_queued(
    stack: tuple[RegistryStore, FakePort, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _port, _model = stack
    code, _out, err = run_cli(capsys, "models", "rollback", "nope")
    assert code == 2 and "expected a configured model" in err
    (Path.cwd() / "models.yaml").write_text("models:\n  - id: tiny\n    sorce: /x\n")
    code, _out, err = run_cli(capsys, "models", "deploy")
    assert code == 2 and "models.yaml" in err
    code, _out, err = run_cli(capsys, "models", "promote", "tiny", "--no-wait")
    assert code == 2  # the configuration is still broken: nothing queued
    assert ChangeRequests(store).claim(now=T0) is None


def test_promote_without_a_staging_revision_says_what_to_do(
    stack: tuple[RegistryStore, FakePort, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, port, _model = stack
    applier = apply_next(store, port)
    code, _out, err = run_cli(capsys, "models", "promote", "tiny", "--timeout", "30")
    applier.join(5)
    assert code == 1 and "models deploy --environment staging first" in " ".join(err.split())
    assert port.calls == []


def test_no_serve_process_to_apply_it_times_out_with_a_hint(
    stack: tuple[RegistryStore, FakePort, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = run_cli(capsys, "models", "deploy", "--json", "--timeout", "0")
    assert code == 1 and json.loads(out)["request"]["status"] == "pending"
    code, _out, err = run_cli(capsys, "models", "deploy", "--timeout", "0")
    assert code == 1 and "make up" in err


@pytest.mark.parametrize("stack", [Status.LOADING], indirect=True)
def test_a_generation_serve_left_loading_is_recorded_ready_kept_and_a_rollback_target(
    stack: tuple[RegistryStore, FakePort, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, port, model = stack
    [started] = store.entries("tiny")
    assert started.status is Status.LOADING
    applier = apply_next(store, port)
    code, out, _err = run_cli(capsys, "models", "deploy", "--json", "--timeout", "30")
    applier.join(5)
    [outcome] = json.loads(out)["request"]["result"]["outcomes"]
    assert code == 0 and outcome["action"] == "keep" and port.calls == []
    assert store.entry(started.id).status is Status.READY  # type: ignore[union-attr]
    assert store.history("tiny")[-1].reason == "running (seen by the model change applier)"
    models_yaml(Path.cwd(), model, max_model_len=256)
    applier = apply_next(store, port)
    assert run_cli(capsys, "models", "deploy", "--timeout", "30")[0] == 0
    applier.join(5)
    applier = apply_next(store, port)
    code, out, _err = run_cli(capsys, "models", "rollback", "tiny", "--json", "--timeout", "30")
    applier.join(5)
    assert code == 0, out
    assert store.routes(PROD)[("tiny", PROD)].entry_id == started.id


def test_a_request_whose_models_yaml_is_invalid_is_refused_before_anything_starts(
    stack: tuple[RegistryStore, FakePort, Path],
) -> None:
    store, port, _model = stack
    request = ChangeRequests(store).submit(
        "deploy", PROD, {"models_yaml": "models:\n  - id: tiny\n    sorce: /x\n"}, now=T0
    )
    config = load_config(ConfigFiles(models=Path("models.yaml")), gpu_count=0)
    result = ChangeApplier(config, store, port).handle(request)
    assert not result["ok"] and result["reason"].startswith("refused before anything started")
    assert "models.yaml (of the request)" in result["reason"] and "sorce" in result["reason"]
    assert "/tmp" not in result["reason"] and port.calls == []


def test_a_rollback_of_a_model_not_served_says_how_to_serve_it_again(
    stack: tuple[RegistryStore, FakePort, Path],
) -> None:
    store, port, _model = stack
    request = ChangeRequests(store).submit("rollback", PROD, {"to": None}, model_id="gone", now=T0)
    config = load_config(ConfigFiles(models=Path("models.yaml")), gpu_count=0)
    result = ChangeApplier(config, store, port).handle(request)
    assert not result["ok"] and result["reason"].startswith("refused before anything started")
    assert "'gone'" in result["reason"] and "add it to models.yaml and run models deploy" in result["reason"]
    assert port.calls == []
