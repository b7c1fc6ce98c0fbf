"""``make up`` → a streaming chat over HTTPS → the supervisor heals a killed serve → ``make up`` again
changes nothing → ``make down`` leaves nothing. One stack for the module; the tests run in this order."""

from __future__ import annotations

import json
import ssl
import time

import docker
import httpx
import openai

from appliance.registry.states import Environment
from appliance.registry.store import RegistryStore
from tests.e2e_docker.prepare import PROJECT
from tests.e2e_docker.stack import DockerStack
from tests.helpers import set_line

SERVICES = {"serve", "nginx", "supervisor", "prometheus", "alertmanager", "node-exporter"}


def _by_service(stack: DockerStack) -> dict[str, dict]:
    out = {}
    for container in stack.containers():
        container.reload()
        state = container.attrs["State"]
        out[container.labels["com.docker.compose.service"]] = {
            "id": container.id,
            "started": state["StartedAt"],
            "status": state["Status"],
            "health": (state.get("Health") or {}).get("Status"),
        }
    return out


def test_make_up_prints_key_urls_and_snippets(docker_stack: DockerStack) -> None:
    out = docker_stack.up_output
    assert "self-signed" in out
    assert f"https://127.0.0.1:{docker_stack.https_port}/v1" in out
    assert "curl --cacert" in out and "from openai import OpenAI" in out
    assert "every model is ready" in out
    assert set(_by_service(docker_stack)) == SERVICES, "grafana/exporters/datadog are off in compose/local.yml"
    deadline = time.monotonic() + 180  # Prometheus and Alertmanager report healthy a little after the models
    while True:
        services = _by_service(docker_stack)
        unwell = {
            s: (v["status"], v["health"])
            for s, v in services.items()
            if v["status"] != "running" or v["health"] not in (None, "healthy")
        }
        if not unwell:
            break
        assert time.monotonic() < deadline, f"not running and healthy: {unwell}"
        time.sleep(3)


def test_streaming_chat_over_https_with_the_printed_key(docker_stack: DockerStack) -> None:
    context = ssl.create_default_context(cafile=str(docker_stack.cafile))
    client = openai.OpenAI(
        base_url=docker_stack.url + "/v1",
        api_key=docker_stack.key,
        http_client=httpx.Client(verify=context, timeout=120),
    )
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=8,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    assert chunks and chunks[-1].choices[0].finish_reason == "length"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 1
    refused = httpx.post(
        docker_stack.url + "/v1/chat/completions",
        verify=context,
        timeout=30,
        headers={"Authorization": "Bearer sk-wrong"},
        json={"model": "tiny", "messages": []},
    )
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


def test_a_model_disabled_over_the_admin_api_is_a_supervisor_event(docker_stack: DockerStack) -> None:
    """disable -> 404 for the model, enable -> served again; the supervisor reports both transitions."""
    admin = {"Authorization": f"Bearer {docker_stack.key}"}
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    # the model may answer a moment before serve's head records its entry ready ("the application is running"):
    # until then the registry refuses the move (409, loading -> disabled)
    deadline = time.monotonic() + 120
    disabled = docker_stack.post("/admin/models/tiny/disable", headers=admin, json={"reason": "e2e"})
    while disabled.status_code == 409 and time.monotonic() < deadline:
        time.sleep(2)
        disabled = docker_stack.post("/admin/models/tiny/disable", headers=admin, json={"reason": "e2e"})
    try:
        assert disabled.status_code == 200, disabled.text
        refused = docker_stack.post("/v1/chat/completions", headers=admin, json=chat, timeout=30)
        deadline = time.monotonic() + 10  # the ingress reads the routes once a second
        while refused.status_code != 404 and time.monotonic() < deadline:
            time.sleep(1)
            refused = docker_stack.post("/v1/chat/completions", headers=admin, json=chat, timeout=30)
        assert refused.status_code == 404, refused.text
    finally:
        enabled = docker_stack.post("/admin/models/tiny/enable", headers=admin, json={})
    assert enabled.status_code == 200, enabled.text
    supervisor = next(c for c in docker_stack.containers() if c.labels["com.docker.compose.service"] == "supervisor")
    wanted = ("ready -> disabled: disabled by", "disabled -> ready: enabled by")
    deadline, logs = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        logs = supervisor.logs(tail=200).decode(errors="replace")
        if all(w in logs for w in wanted):
            break
        time.sleep(2)
    assert all(w in logs for w in wanted), logs[-3000:]
    deadline = time.monotonic() + 10
    served = docker_stack.post("/v1/chat/completions", headers=admin, json=chat, timeout=60)
    while served.status_code != 200 and time.monotonic() < deadline:
        time.sleep(1)
        served = docker_stack.post("/v1/chat/completions", headers=admin, json=chat, timeout=60)
    assert served.status_code == 200, served.text


def _change_tiny_live(docker_stack: DockerStack, max_model_len: int) -> dict:
    """``models deploy`` over the admin API: tiny with another max_model_len (a new generation, switched to)."""
    admin = {"Authorization": f"Bearer {docker_stack.key}"}
    text = (
        (docker_stack.root / "models.yaml").read_text().replace("max_model_len: 512", f"max_model_len: {max_model_len}")
    )
    queued = docker_stack.post("/admin/models/deploy", headers=admin, json={"models_yaml": text})
    assert queued.status_code == 202, queued.text
    deadline, request = time.monotonic() + 600, queued.json()["request"]
    while request["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(2)
        request = docker_stack.get(queued.json()["poll"], headers=admin).json()["request"]
    assert request["status"] == "done", request
    return request


def _served_max_model_len(docker_stack: DockerStack) -> int | None:
    """What the registry's production route of tiny says its generation was started with."""
    store = RegistryStore.open(f"sqlite:///{docker_stack.root / 'data/registry/registry.db'}")
    route = store.routes(Environment.PRODUCTION)[("tiny", Environment.PRODUCTION)]
    spec = store.spec(route.entry_id)
    return spec["max_model_len"] if spec else None


def test_killed_serve_is_brought_back_by_the_supervisor_serving_what_the_last_change_left(
    docker_stack: DockerStack,
) -> None:
    """A change applied live (``models deploy``: not in the models.yaml ``make up`` rendered) is still what serves
    after the supervisor restarts a killed serve: the last good generation, not the rendered file's."""
    started = time.monotonic()
    _change_tiny_live(docker_stack, 384)
    print(f"live change of tiny applied in {time.monotonic() - started:.0f} s")
    assert _served_max_model_len(docker_stack) == 384
    before = _by_service(docker_stack)["serve"]
    client = docker.DockerClient(base_url=docker_stack.engine.url, timeout=30)
    try:
        client.containers.get(before["id"]).kill()
    finally:
        client.close()
    recovered = docker_stack.wait_ready(timeout=600)
    after = _by_service(docker_stack)["serve"]
    assert after["started"] != before["started"], "serve was not restarted"
    state = json.loads((docker_stack.root / "data" / "supervisor" / "watchdog.json").read_text())
    assert state["services"]["serve"]["restarts"], "the supervisor's watchdog did not record the restart"
    print(f"serve recovered in {recovered:.0f} s after docker kill")
    assert _served_max_model_len(docker_stack) == 384, "the restarted serve went back to the rendered models.yaml"
    served = json.loads((docker_stack.root / "data" / "registry" / "served.json").read_text())
    assert [m["max_model_len"] for m in served["models"]] == [384]


def test_make_up_again_restarts_nothing(docker_stack: DockerStack) -> None:
    before = _by_service(docker_stack)
    again = docker_stack.make("up", timeout=1800)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    after = _by_service(docker_stack)
    assert {s: (v["id"], v["started"]) for s, v in after.items()} == {
        s: (v["id"], v["started"]) for s, v in before.items()
    }, "a second make up with nothing changed recreated or restarted a service"
    assert "Your admin API key" not in again.stdout, "the first key is made (and shown) once"


def test_an_nginx_setting_restarts_nginx_and_the_supervisor_only(docker_stack: DockerStack) -> None:
    before = _by_service(docker_stack)
    set_line(docker_stack.root / ".env", "NGINX_RATE_LIMIT_RPM", "1200")
    again = docker_stack.make("up", timeout=1800)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    after = _by_service(docker_stack)
    changed = {s for s in after if (after[s]["id"], after[s]["started"]) != (before[s]["id"], before[s]["started"])}
    assert changed == {"nginx", "supervisor"}
    assert "rate=1200r/m" in (docker_stack.root / "data/run/nginx/nginx.conf").read_text()
    assert docker_stack.get("/health/ready").status_code == 200


def test_make_down_leaves_no_containers_or_networks(docker_stack: DockerStack) -> None:
    down = docker_stack.make("down", timeout=600)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert docker_stack.containers() == []
    client = docker.DockerClient(base_url=docker_stack.engine.url, timeout=30)
    try:
        networks = client.networks.list(filters={"label": f"com.docker.compose.project={PROJECT}"})
    finally:
        client.close()
    assert networks == []
