"""Scale-out with two "machines" on this one: the tier's stack is the head (its serve container at 10.77.0.10 on a
macvlan over one end of a veth pair, tests/e2e_docker/conftest.py), and a second copy of the repository, with its
own .env and compose project, joins it with `python -m appliance join` over the other end (10.77.0.20): the
cable between two hosts. Nothing is published on the host, and the range exists only in the test's namespace.

A worker holding another token is refused by the head; with the head's token it joins; a model pinned to it
(`nodes: [worker1]`) answers through the head's nginx while its engine runs in
the worker container (added with `make up`, which restarts the head: the worker joins the new head by itself);
`leave` (it drains the node first: the pinned model's replica has nowhere to go, and leave says so) → that
model gets 503 with Retry-After (never 500/502), the head's own model keeps answering and the
ModelUnavailable alert is raised (pending) for the pinned model only (the worker's own metrics reach the head's Prometheus through
the serve container's relay while it is there); join again → it answers again. The model is removed and the worker's project taken down at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml

from tests.e2e_docker.prepare import BASE_IMAGE
from tests.e2e_docker.stack import (
    CLUSTER_SUBNET,
    HEAD_BIND,
    MODEL_IN_CONTAINER,
    WORKER_BIND,
    WORKER_LINK,
    WORKER_NODE,
    DockerStack,
    copy_stack,
    stack_secret,
)
from tests.helpers import ROOT, set_line

WORKER_ROOT = ROOT / ".cache" / "e2e-docker-worker"
WORKER_PROJECT = "appliance-e2e-w1"
PINNED = "tiny-w"
CHANGE_TIMEOUT_S = 900  # a model load is ~50 s here; far below this
BACK_TIMEOUT_S = 300
DRAIN_S = 20  # leave's drain: the pinned model cannot move (no other node may run it), so all of it is waited
SCRAPE_TIMEOUT_S = 120  # the relay's service discovery refresh (30 s) and a scrape (15 s), with room
ALERT_TIMEOUT_S = 120  # until pending: the ingress's check, a scrape and an evaluation (15 s each), with room
NODE_DEAD_TIMEOUT_S = 180  # until Ray's GCS marks the stopped worker's node dead (its health checks: ~30 s)


def _env(stack: DockerStack) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": stack.engine.url, "APPLIANCE_GPU_COUNT": "0", "NO_COLOR": "1"}


def _cli(stack: DockerStack, root: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        cwd=root,
        env=_env(stack),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _join(stack: DockerStack, *extra: str, timeout_s: int = 180) -> subprocess.CompletedProcess[str]:
    return _cli(
        stack,
        WORKER_ROOT,
        "join",
        HEAD_BIND,
        "--local",
        "--base-image",
        BASE_IMAGE,
        "--timeout",
        str(timeout_s),
        *extra,
    )


def _chat(stack: DockerStack, model: str) -> httpx.Response | None:
    try:
        return stack.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4},
            headers={"Authorization": f"Bearer {stack.key}"},
            timeout=60,
        )
    except httpx.HTTPError:
        return None


def _until(condition, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(2)
    return None


def _serve(stack: DockerStack):
    return next(c for c in stack.containers() if c.labels.get("com.docker.compose.service") == "serve")


NODES = (
    "import json, ray; ray.init(address='auto', logging_level='ERROR'); "
    "print('NODES ' + json.dumps([[n['NodeManagerAddress'], n.get('Labels', {}).get('appliance.io/node')] "
    "for n in ray.nodes() if n['Alive']]))"
)


def _alive_nodes(stack: DockerStack) -> list[list[str]]:
    out = _serve(stack).exec_run(["python", "-c", NODES]).output.decode(errors="replace")
    line = next((x for x in out.splitlines() if x.startswith("NODES ")), None)
    assert line, out[-2000:]
    return json.loads(line[len("NODES ") :])


def _worker_container(stack: DockerStack):
    client = docker.DockerClient(base_url=stack.engine.url, timeout=30)
    try:
        found = client.containers.list(filters={"label": f"com.docker.compose.project={WORKER_PROJECT}"})
        return found[0] if found else None
    finally:
        client.close()


def _up(stack: DockerStack, models: list[dict]) -> subprocess.CompletedProcess[str]:
    """models.yaml rewritten, then `make up`: serve restarts with it (a new model id is added this way; the Ray
    worker loses the head for that time and joins again by itself, restarted by Docker)."""
    (stack.root / "models.yaml").write_text(yaml.safe_dump({"models": models}, sort_keys=False))
    return stack.make("up", timeout=CHANGE_TIMEOUT_S)


@pytest.fixture(scope="module")
def worker(docker_stack: DockerStack) -> Iterator[Path]:
    copy_stack(WORKER_ROOT)
    env = WORKER_ROOT / ".env"
    shutil.copyfile(WORKER_ROOT / ".env.example", env)
    for key, value in {
        "ACCELERATOR": "cpu",
        "COMPOSE_PROJECT_NAME": WORKER_PROJECT,
        "RAY_NODE_NAME": WORKER_NODE,
        "RAY_CLUSTER_INTERFACE": WORKER_LINK,
        "RAY_CLUSTER_SUBNET": CLUSTER_SUBNET,
        "RAY_CLUSTER_BIND": WORKER_BIND,
    }.items():
        set_line(env, key, value)
    shutil.copyfile(WORKER_ROOT / ".secrets.example", WORKER_ROOT / ".secrets")
    (WORKER_ROOT / ".secrets").chmod(0o600)
    init = _cli(docker_stack, WORKER_ROOT, "init")
    assert init.returncode == 0, init.stdout + init.stderr
    # the same weights at the same path as on the head (an operator copies them, or the model is a Hub id)
    shutil.copytree(docker_stack.root / "models" / "tiny", WORKER_ROOT / "models" / "tiny")
    original = yaml.safe_load((docker_stack.root / "models.yaml").read_text())["models"]
    try:
        yield WORKER_ROOT
    finally:
        # the worker leaves first: a model Ray was free to place could have landed on it, and the tests after
        # this file expect the stack as `make up` left it, every model on the head and ready
        _cli(docker_stack, WORKER_ROOT, "leave", "--drain-timeout", "0", timeout=300)
        if yaml.safe_load((docker_stack.root / "models.yaml").read_text())["models"] != original:
            done = _up(docker_stack, original)
            print("restore models:", done.returncode, done.stdout[-1500:], done.stderr[-1500:], file=sys.stderr)
        down = _cli(docker_stack, WORKER_ROOT, "down", timeout=600)
        print("worker down:", down.returncode, down.stderr[-1500:], file=sys.stderr)


def test_a_worker_with_another_token_is_refused(docker_stack: DockerStack, worker: Path) -> None:
    wrong = worker / "wrong-token"
    wrong.write_text(secrets.token_hex(32))
    started = time.monotonic()
    refused = _join(docker_stack, "--token-file", str(wrong), timeout_s=120)
    print(f"wrong token: join exited {refused.returncode} after {time.monotonic() - started:.0f} s:")
    print(refused.stderr[-1500:])
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert "refused this node's Ray token" in refused.stderr, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr
    assert _worker_container(docker_stack) is None, "a refused worker's container is removed"
    assert [n for n in _alive_nodes(docker_stack) if n[1] == WORKER_NODE] == []


def test_a_model_pinned_to_the_worker_serves_through_the_head_and_waits_while_it_is_away(
    docker_stack: DockerStack, worker: Path
) -> None:
    token = docker_stack.root / "data" / "run" / "serve" / "ray_auth_token"
    started = time.monotonic()
    joined = _join(docker_stack, "--token-file", str(token), "--no-build")
    print(f"join: {time.monotonic() - started:.1f} s")
    assert joined.returncode == 0, joined.stdout[-3000:] + joined.stderr[-3000:]
    nodes = _alive_nodes(docker_stack)
    assert [WORKER_BIND, WORKER_NODE] in nodes and [HEAD_BIND, "head"] in nodes, nodes

    original = yaml.safe_load((docker_stack.root / "models.yaml").read_text())["models"]
    pinned = {**original[0], "id": PINNED, "source": MODEL_IN_CONTAINER, "nodes": [WORKER_NODE]}
    # the head's model pinned to the head: left to Ray, it may land on the worker (then `leave` below takes it too)
    on_head = {**original[0], "nodes": ["head"]}
    started = time.monotonic()
    done = _up(docker_stack, [on_head, *original[1:], pinned])
    print(f"make up with the pinned model (head restarted, worker back by itself): {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [WORKER_BIND, WORKER_NODE] in _alive_nodes(docker_stack)
    answer = _chat(docker_stack, PINNED)
    assert answer is not None and answer.status_code == 200, answer and answer.text[:500]
    assert answer.json()["choices"][0]["message"]["content"] is not None
    status = _cli(docker_stack, docker_stack.root, "status", "--json", timeout=120)
    by_node = {n["node"]: n for n in json.loads(status.stdout).get("nodes", [])}
    assert by_node.get(WORKER_NODE, {}).get("address") == WORKER_BIND, status.stdout[-2000:]
    assert any(PINNED in d for d in by_node[WORKER_NODE]["runs"]), by_node
    assert not any(PINNED in d for d in by_node["head"]["runs"]) and "ApplianceIngress" in by_node["head"]["runs"]
    on_worker = [" ".join(p[-1:]) for p in (_worker_container(docker_stack).top().get("Processes") or [])]
    assert "VLLM::EngineCore" in on_worker, f"no vLLM engine in the worker container: {on_worker}"
    # Prometheus (which cannot reach the cluster network) scrapes the worker's own metrics export through the
    # head's relay: the pinned model's engine series, recorded on the worker, carry the worker's node name
    auth = (stack_secret(docker_stack, "DASHBOARD_USER"), stack_secret(docker_stack, "DASHBOARD_PASSWORD"))
    scraped: dict[str, list] = {}

    def worker_scraped() -> bool:
        for name, promql in {
            "up": f'up{{job="ray-workers", node="{WORKER_NODE}"}} == 1',
            "engine": f'ray_vllm_num_requests_running{{model_name="{PINNED}", node="{WORKER_NODE}"}}',
            "head": 'ray_appliance_model_serving{node="head"}',
        }.items():
            reply = docker_stack.get("/prometheus/api/v1/query", params={"query": promql}, auth=auth)
            scraped[name] = reply.json()["data"]["result"] if reply.is_success else []
        return all(scraped.values())

    found = _until(worker_scraped, timeout=SCRAPE_TIMEOUT_S)
    print(f"worker's metrics in Prometheus after {found} s: {sorted(k for k, v in scraped.items() if v)}")
    assert found is not None, f"the worker's metrics not scraped within {SCRAPE_TIMEOUT_S} s: {scraped}"
    assert scraped["up"][0]["metric"]["instance"] == f"{WORKER_BIND}:8080", scraped["up"]

    left_at = time.monotonic()
    left = _cli(docker_stack, worker, "leave", "--drain-timeout", str(DRAIN_S), timeout=300)
    assert left.returncode == 0, left.stderr[-2000:]
    said = " ".join((left.stdout + left.stderr).split())  # (the console wraps long lines)
    print(f"leave with a drain of {DRAIN_S} s took {time.monotonic() - left_at:.1f} s: {said.strip()[-600:]}")
    # the pinned model may run on no other node: Serve stops its replica soon after the drain began, and nothing
    # replaces it; leave says so (the head's model is pinned to the head: nothing else ran on the worker)
    assert "draining this node" in said and "stopped, no other node runs them" in said, said[-2000:]
    assert f"LLMServer:{PINNED}" in said and "moved to other nodes" not in said, said[-2000:]
    stopped_at = time.monotonic()
    refusals: list[httpx.Response] = []
    seen: list[int | None] = []

    def refused() -> bool:
        reply = _chat(docker_stack, PINNED)
        seen.append(reply.status_code if reply is not None else None)
        if reply is not None and reply.status_code == 503:
            refusals.append(reply)
        return bool(refusals)

    after = _until(refused, timeout=BACK_TIMEOUT_S)
    print(f"worker gone: first 503 after {after} s; statuses seen: {sorted(set(map(str, seen)))}")
    assert refusals, f"no 503 for {PINNED} after its node left; statuses: {seen}"
    assert int(refusals[0].headers["retry-after"]) > 0
    assert refusals[0].json()["error"]["type"], refusals[0].text[:300]
    assert not {500, 502} & {s for s in seen if s is not None}, seen
    head_model = _chat(docker_stack, original[0]["id"])
    assert head_model is not None and head_model.status_code == 200, "the head's own model must keep answering"
    print(f"leave → 503: {time.monotonic() - left_at:.1f} s ({time.monotonic() - stopped_at:.1f} s after it returned)")
    # ModelUnavailable (the ingress's own view; Serve keeps calling the deployment healthy, so ModelNotReady
    # would not fire) goes pending for the pinned model only: its expression matches the series the ingress
    # exports. That it turns firing after its `for: 2m` is Prometheus's part, tested against the same rule file
    # by promtool (prometheus/tests/alerts_test.yml, integration tier); waiting for it here cost 2 minutes.
    states: list[str] = []

    def alert_raised() -> bool:
        query = f'ALERTS{{alertname="ModelUnavailable", model="{PINNED}"}}'
        reply = docker_stack.get("/prometheus/api/v1/query", params={"query": query}, auth=auth)
        states[:] = [r["metric"]["alertstate"] for r in reply.json()["data"]["result"]] if reply.is_success else []
        return bool(states)

    raised = _until(alert_raised, timeout=ALERT_TIMEOUT_S)
    print(f"leave → ModelUnavailable {states}: {time.monotonic() - left_at:.1f} s")
    assert raised is not None, f"ModelUnavailable for {PINNED} not pending {ALERT_TIMEOUT_S} s after the 503s"
    others = docker_stack.get("/prometheus/api/v1/query", params={"query": "ALERTS"}, auth=auth).json()
    models = {
        r["metric"].get("model") for r in others["data"]["result"] if r["metric"]["alertname"] == "ModelUnavailable"
    }
    assert models == {PINNED}, f"only the model away with its worker is unavailable: {models}"
    # doctor's cluster-fit reads Ray's node table: the GCS marks a stopped raylet dead after some seconds (a doctor
    # run 11 s after `leave` still saw the node alive, as the 503s came from the ingress's own checks)
    found: dict[str, Any] = {}

    def doctor_sees_it_gone() -> bool:
        doctor = _cli(docker_stack, docker_stack.root, "doctor", "--json", timeout=300)
        found["exit"], found["stderr"] = doctor.returncode, doctor.stderr
        found["fit"] = {
            f["title"]: f
            for c in json.loads(doctor.stdout)["checks"]
            if c["check"] == "cluster-fit"
            for f in c["findings"]
        }
        return found["fit"].get(f"placement: {PINNED}", {}).get("level") == "error"

    seen_gone = _until(doctor_sees_it_gone, timeout=NODE_DEAD_TIMEOUT_S)
    fit = found["fit"]
    print(
        f"doctor with the worker gone ({seen_gone} s after the alert): exit {found['exit']}; "
        f"cluster-fit {[(t, f['level']) for t, f in fit.items()]}"
    )
    assert fit[f"placement: {PINNED}"]["level"] == "error" and "joined: head" in fit[f"placement: {PINNED}"]["found"]
    assert fit["worker nodes"]["level"] == "info" and fit[f"placement: {original[0]['id']}"]["level"] == "ok", fit
    assert found["exit"] == 1, found["stderr"][-2000:]

    rejoined_at = time.monotonic()
    again = _join(docker_stack, "--no-build")  # the token join copied the first time
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    back = _until(
        lambda: (reply := _chat(docker_stack, PINNED)) is not None and reply.status_code == 200, BACK_TIMEOUT_S
    )
    print(f"rejoin → {PINNED} answering again: {time.monotonic() - rejoined_at:.1f} s")
    assert back is not None, f"{PINNED} did not come back within {BACK_TIMEOUT_S} s of the worker rejoining"
