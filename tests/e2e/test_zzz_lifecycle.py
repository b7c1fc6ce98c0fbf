"""Model changes on the real stack (Ray + vLLM CPU, the tiny model), applied by `serve --attach` (what the serve
head runs in the container): a tampered revision is refused and the old generation keeps serving; disable →
404, enable → back; a changed engine argument is deployed beside the serving generation and switched to while
both models take traffic, with no failed request; a new model id is added to the running application (its
ingress learns it live) while the others keep serving, and with its standby replica rides out an engine crash;
models left out of models.yaml are removed from the running application. Runs last (its changes stay: tiny-embed and tiny-c end removed).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import yaml

from appliance.lifecycle.integrity import ModelToVerify, verify_model
from appliance.lifecycle.manifest import ManifestStore
from appliance.registry.states import Environment
from appliance.registry.store import RegistryStore
from tests.e2e.conftest import CACHE, NO_EOS, Stack
from tests.traffic import Traffic, engine_processes

CHANGE_TIMEOUT = 900  # seconds the CLI waits for a change (a model load is ~50 s on 2 cores; far below this)
T = TypeVar("T")
FAILOVER_WATCH_S = 30  # how long clients are watched after one of tiny-c's engines is killed


def _cli(stack: Stack, *args: str, timeout: float = CHANGE_TIMEOUT + 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        cwd=stack.root,
        env=stack.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


_ORIGINAL: dict[str, str] = {}  # the session's models.yaml, as the applier read it


def _models_yaml(stack: Stack, sources: dict[str, Path], max_model_len: dict[str, int] | None = None) -> None:
    """The session's models.yaml with some models' source or max_model_len changed; every other field (tool
    calling, the embedding model, ...) as the session set it, so that only the named changes are changes."""
    models = yaml.safe_load(_ORIGINAL["text"])
    for model in models["models"]:
        if model["id"] in sources:
            model["source"] = str(sources[model["id"]])
        if model["id"] in (max_model_len or {}):
            model["max_model_len"] = max_model_len[model["id"]]
    (stack.root / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))


@pytest.fixture(scope="module")
def applier(stack: Stack) -> Iterator[subprocess.Popen[str]]:
    """The change applier attached to the session's application, as the serve head runs it."""
    assert stack.ray_address
    original = (stack.root / "models.yaml").read_text()
    _ORIGINAL["text"] = original
    log = (stack.root / "applier.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--attach", "--ray-address", stack.ray_address],
        cwd=stack.root,
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # It builds the application from the models.yaml it read at its start, as the serve head does: the tests
        # edit models.yaml only once it has read the one the application runs.
        deadline = time.monotonic() + 300
        while "applying queued model changes" not in (stack.root / "applier.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (stack.root / "applier.log").read_text()[-3000:]
            time.sleep(0.5)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        (stack.root / "models.yaml").write_text(original)


def _completion(stack: Stack, model: str) -> int:
    body = json.dumps({"model": model, "prompt": "lifecycle", "max_tokens": 4, **NO_EOS})
    return stack.post("/v1/completions", key=stack.keys["admin"], content=body).status_code


def _deploy_under_traffic(
    stack: Stack, models: tuple[str, ...], then: Callable[[], T]
) -> tuple[float, dict[str, dict[str, Any]], list[Traffic], T]:
    """``models deploy --json`` while one client per model in ``models`` sends requests; ``then`` runs right after
    the CLI returned, before the clients stop. Returns the deploy's seconds, its outcome per model, the clients
    and what ``then`` gave."""
    stop = threading.Event()
    clients = [Traffic(stack.url, stack.keys["admin"], model, stop) for model in models]
    for client in clients:
        client.start()
    started = time.monotonic()
    try:
        done = _cli(stack, "models", "deploy", "--json", "--timeout", str(CHANGE_TIMEOUT))
        took = time.monotonic() - started
        after = then()
    finally:
        stop.set()
        for client in clients:
            client.join(90)
    assert done.returncode == 0, done.stdout + done.stderr
    outcomes = {o["model"]: o for o in json.loads(done.stdout)["request"]["result"]["outcomes"]}
    return took, outcomes, clients, after


def _seen(client: Traffic) -> dict[str, int]:
    return dict(Counter(w for _t, w in client.outcomes))


def _store(stack: Stack) -> RegistryStore:
    return RegistryStore.open(f"sqlite:///{stack.root / 'data' / 'registry' / 'registry.db'}")


def test_a_tampered_revision_is_refused_and_the_old_generation_keeps_serving(
    stack: Stack, applier: object, tmp_path: Path
) -> None:
    copy = stack.root / "models" / "tiny-a-v2"
    shutil.copytree(CACHE, copy, dirs_exist_ok=True)
    verify_model(
        ModelToVerify("tiny-a", str(copy), None, False),
        ManifestStore(stack.root / "data/registry/manifests"),
        now="written by the test",
    )  # its manifest, as a first load writes it
    with (copy / "model.safetensors").open("ab") as weights:
        weights.write(b"\0" * 16)  # then the weights change on disk
    _models_yaml(stack, {"tiny-a": copy})
    before = len(_store(stack).history("tiny-a"))
    done = _cli(stack, "models", "deploy", "--json", "--timeout", str(CHANGE_TIMEOUT))
    assert done.returncode == 1, done.stdout + done.stderr
    outcomes = {o["model"]: o for o in json.loads(done.stdout)["request"]["result"]["outcomes"]}
    assert (
        outcomes["tiny-a"]["action"] == "refuse"
        and "model.safetensors: expected sha256:" in outcomes["tiny-a"]["reason"]
    )
    assert outcomes["tiny-b"]["action"] == "keep"
    history = _store(stack).history("tiny-a")[before:]
    assert history[-1].to_status.value == "failed" and "model.safetensors: expected sha256:" in history[-1].reason
    assert _completion(stack, "tiny-a") == 200, "the old generation serves"
    route = _store(stack).routes(Environment.PRODUCTION)[("tiny-a", Environment.PRODUCTION)]
    assert route.deployment == "LLMServer:tiny-a"
    _models_yaml(stack, {})


def _wait_status(stack: Stack, model: str, status: int, deadline_s: float = 60) -> int:
    deadline = time.monotonic() + deadline_s
    seen = _completion(stack, model)
    while seen != status and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = _completion(stack, model)
    return seen


def test_disable_answers_404_and_enable_brings_it_back(stack: Stack, applier: object) -> None:
    assert _cli(stack, "models", "disable", "tiny-b", "--reason", "e2e").returncode == 0
    assert _wait_status(stack, "tiny-b", 404) == 404
    assert _completion(stack, "tiny-a") == 200
    assert _cli(stack, "models", "enable", "tiny-b").returncode == 0
    assert _wait_status(stack, "tiny-b", 200) == 200


def test_a_changed_engine_argument_switches_with_no_failed_request(stack: Stack, applier: object) -> None:
    bystander_engines = _pids("tiny-b")
    _models_yaml(stack, {}, {"tiny-a": 256})
    # requests go on 3 s after the CLI returned: after the switch, on the new generation
    _took, outcomes, (changed, bystander), _ = _deploy_under_traffic(stack, ("tiny-a", "tiny-b"), lambda: time.sleep(3))
    print(f"\nlifecycle change: {json.dumps(outcomes['tiny-a'])}; tiny-a {_seen(changed)}, tiny-b {_seen(bystander)}")
    assert outcomes["tiny-a"]["action"] == "change" and outcomes["tiny-a"]["mode"] == "beside"
    assert outcomes["tiny-b"]["action"] == "keep"
    assert not changed.problems and not bystander.problems, (changed.problems[:5], bystander.problems[:5])
    assert {w for _t, w in changed.outcomes} == {"200"} and {w for _t, w in bystander.outcomes} == {"200"}
    route = _store(stack).routes(Environment.PRODUCTION)[("tiny-a", Environment.PRODUCTION)]
    assert route.deployment == f"LLMServer:tiny-a@{outcomes['tiny-a']['entry']}"
    assert _pids("tiny-b") == bystander_engines, "the unchanged model was not restarted"
    assert _completion(stack, "tiny-a") == 200


def test_a_new_model_id_is_added_to_the_running_application_and_nothing_else_restarts(
    stack: Stack, applier: object
) -> None:
    """`models deploy` with a model id the application did not serve: loaded and smoke-tested beside, learned by
    the running ingress (its user_config; no restart), then routed; the other models' engines keep running and
    their traffic sees no error."""
    engines = {model: _pids(model) for model in ("tiny-a", "tiny-b")}
    models = yaml.safe_load((stack.root / "models.yaml").read_text())  # as the test before left it
    tiny_b = next(m for m in models["models"] if m["id"] == "tiny-b")
    # with a standby replica: the test after this one crashes one of its two engines
    models["models"].append({**tiny_b, "id": "tiny-c", "source": str(CACHE), "replicas_standby": 1})
    (stack.root / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    assert _completion(stack, "tiny-c") == 404, "not served before the deploy"
    took, outcomes, [bystander], first = _deploy_under_traffic(stack, ("tiny-b",), lambda: _completion(stack, "tiny-c"))
    print(f"\nnew model added in {took:.1f} s: {json.dumps(outcomes['tiny-c'])}; tiny-b meanwhile {_seen(bystander)}")
    assert outcomes["tiny-c"]["action"] == "start" and outcomes["tiny-c"]["ok"], outcomes["tiny-c"]
    assert {outcomes[m]["action"] for m in ("tiny-a", "tiny-b")} == {"keep"}
    assert first == 200, "the ingress knew the model when the deploy returned"
    listed = stack.get("/v1/models", key=stack.keys["admin"]).json()
    assert "tiny-c" in {m["id"] for m in listed["data"]}
    admin = stack.get("/admin/models", key=stack.keys["admin"]).json()
    assert {m["id"]: m["source"] for m in admin["models"]}["tiny-c"] == str(CACHE)
    route = _store(stack).routes(Environment.PRODUCTION)[("tiny-c", Environment.PRODUCTION)]
    assert route.deployment == f"LLMServer:tiny-c@{outcomes['tiny-c']['entry']}"
    assert {model: _pids(model) for model in engines} == engines, "no other engine restarted"
    assert not bystander.problems and {w for _t, w in bystander.outcomes} == {"200"}, bystander.problems[:5]
    ready = stack.get("/health/ready", key=stack.keys["admin"])
    assert ready.status_code == 200 and "tiny-c" in ready.json().get("models", {}), ready.text[:500]
    assert _engines_of("tiny-c") == 2, "tiny-c runs two replicas (one standby)"


def test_an_engine_crash_of_a_model_with_a_standby_replica_is_a_failover(stack: Stack, applier: object) -> None:
    """tiny-c (added live by the test before, with ``replicas_standby: 1``): SIGKILL one of its two engines under
    two clients' traffic. A request that met the dead engine before its first answer goes to the other replica,
    the dead engine's replica leaves at once and Serve starts another; no request is refused and tiny-c's
    readiness entry stays ready. The test does not wait for the new replica to load (minutes here): the next
    test removes tiny-c, the loading replica with it."""
    admin = stack.keys["admin"]
    engines = engine_processes("tiny-c")
    assert len(engines) == 2, [p.pid for p in engines]
    stop = threading.Event()
    clients = [Traffic(stack.url, admin, "tiny-c", stop) for _ in range(2)]
    for client in clients:
        client.start()
    time.sleep(2)  # traffic flowing before the crash

    crashed = time.monotonic()
    engines[0].send_signal(signal.SIGKILL)
    not_ready: list[tuple[float, object]] = []
    replacement = None
    try:
        while time.monotonic() - crashed < FAILOVER_WATCH_S:
            ready = stack.get("/health/ready", key=admin)  # (an admin key: the body says which model, why)
            entry = ready.json().get("models", {}).get("tiny-c", {})
            if not entry.get("ready"):
                not_ready.append((round(time.monotonic() - crashed, 2), entry))
            if replacement is None and _replicas(stack, "tiny-c").get("starting", 0) >= 1:
                replacement = time.monotonic() - crashed
            time.sleep(0.2)
    finally:
        stop.set()
        for client in clients:
            client.join(90)

    outcomes = Counter(what for client in clients for t, what in client.outcomes if t > crashed)
    first = Counter(what for client in clients for t, what in client.outcomes if crashed < t < crashed + 10)
    print(
        f"\nengine crash of one of tiny-c's 2 replicas: outcomes over {FAILOVER_WATCH_S} s {dict(outcomes)} "
        f"(first 10 s: {dict(first)}); Serve starting a new replica after {replacement and round(replacement, 1)} s; "
        f"readiness entry not ready: {not_ready[:10]}"
    )
    for client in clients:
        assert not client.problems, client.problems[:10]
    # no refusal: at most a stream already under way on the dead engine ends with an error event
    assert set(outcomes) <= {"200", "stream-error-event"}, outcomes
    assert outcomes["stream-error-event"] <= len(clients), outcomes
    assert first["200"] > 0, "no request was answered right after the crash"
    assert not not_ready, not_ready[:10]
    assert replacement is not None, f"Serve started no new replica within {FAILOVER_WATCH_S} s"
    assert not engines[0].is_running() or engines[0].status() == psutil.STATUS_ZOMBIE


def _replicas(stack: Stack, model: str) -> dict[str, int]:
    """Serve's replica counts of ``model`` (/admin/models)."""
    listing = stack.get("/admin/models", key=stack.keys["admin"])
    if listing.status_code != 200:
        return {}
    return next((m.get("replicas") or {} for m in listing.json()["models"] if m["id"] == model), {})


def _pids(model: str) -> set[int]:
    """The engine processes of ``model``'s replicas (tiny-c has two)."""
    return {p.pid for p in engine_processes(model)}


def _engines_of(model: str) -> int:
    return len(engine_processes(model))


def test_models_left_out_of_models_yaml_are_removed_and_the_others_keep_serving(stack: Stack, applier: object) -> None:
    """`models deploy` of a models.yaml without tiny-c (added live by the test before) and tiny-embed (one the
    application started with; the one API key limited to it moved first): the running ingress drops both (404 once the CLI
    returns, as for a model never served), then their engines stop and their routes go; tiny-b's engine keeps
    running and its traffic sees no error."""
    bystander_engines = _pids("tiny-b")
    # a key limited to a model keeps it from being removed (validate refuses it, naming the key): move it first
    moved = _cli(stack, "keys", "update", "embedder", "--models", "tiny-b", timeout=120)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    models = yaml.safe_load((stack.root / "models.yaml").read_text())  # as the test before left it
    models["models"] = [m for m in models["models"] if m["id"] not in ("tiny-embed", "tiny-c")]
    (stack.root / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    took, outcomes, [bystander], after = _deploy_under_traffic(
        stack, ("tiny-b",), lambda: {model: _completion(stack, model) for model in ("tiny-embed", "tiny-c", "tiny-b")}
    )
    print(
        f"\nremoved in {took:.1f} s: {json.dumps(outcomes['tiny-embed'])}, {json.dumps(outcomes['tiny-c'])}; "
        f"tiny-b meanwhile {_seen(bystander)}"
    )
    assert {outcomes[m]["action"] for m in ("tiny-embed", "tiny-c")} == {"remove"}
    assert outcomes["tiny-embed"]["ok"] and outcomes["tiny-c"]["ok"], (outcomes["tiny-embed"], outcomes["tiny-c"])
    assert outcomes["tiny-b"]["action"] == "keep"
    assert after == {"tiny-embed": 404, "tiny-c": 404, "tiny-b": 200}
    listed = {m["id"] for m in stack.get("/v1/models", key=stack.keys["admin"]).json()["data"]}
    assert "tiny-b" in listed and not {"tiny-embed", "tiny-c"} & listed
    routes = _store(stack).routes(Environment.PRODUCTION)
    assert ("tiny-embed", Environment.PRODUCTION) not in routes and ("tiny-c", Environment.PRODUCTION) not in routes
    deadline = time.monotonic() + 60  # Serve drains the removed engines' replicas, then they exit
    while (_engines_of("tiny-embed") or _engines_of("tiny-c")) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _engines_of("tiny-embed") and not _engines_of("tiny-c"), "the removed models' engines stopped"
    assert _pids("tiny-b") == bystander_engines, "the model kept was not restarted"
    assert not bystander.problems and {w for _t, w in bystander.outcomes} == {"200"}, bystander.problems[:5]
    ready = stack.get("/health/ready", key=stack.keys["admin"])
    assert ready.status_code == 200 and not {"tiny-embed", "tiny-c"} & set(ready.json().get("models", {})), ready.text[
        :500
    ]
