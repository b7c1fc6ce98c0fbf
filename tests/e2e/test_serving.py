"""The serving path end to end: the official OpenAI client against real Ray Serve + vLLM (CPU) engines."""

from __future__ import annotations

import json
import re
import time

import httpx
import openai
import pytest

from tests.e2e.conftest import ALL_MODELS, MODELS, NO_EOS, Stack


def test_startup_showed_loading_then_ready(stack: Stack) -> None:
    states = [{m["state"] for m in seen["models"].values()} for seen in stack.startup_seen]
    assert "loading" in set().union(*states), stack.startup_seen[:3]
    assert stack.startup_seen[0]["code"] == 503
    last = stack.startup_seen[-1]
    assert last["code"] == 200 and last["status"] == "ready"
    for model in MODELS:
        assert last["models"][model]["state"] == "ready"
        assert last["models"][model]["elapsed_s"] >= 0


def test_live_and_ready_probes(stack: Stack) -> None:
    live = stack.get("/health/live")
    assert live.status_code == 200 and live.json()["status"] == "alive"
    ready = stack.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert all(ready.json()["models"][m]["ready"] for m in MODELS)


def test_chat_and_completions_streaming_and_not(stack: Stack) -> None:
    client = stack.client(stack.keys["usera"])
    chat = client.chat.completions.create(
        model="tiny-a", messages=[{"role": "user", "content": "hello"}], max_tokens=8, extra_body=NO_EOS
    )
    assert chat.choices[0].message.role == "assistant"
    assert chat.usage.completion_tokens == 8

    chunks = list(
        client.chat.completions.create(
            model="tiny-a", messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True, extra_body=NO_EOS
        )
    )
    assert chunks and all(c.choices for c in chunks), "no usage-only chunk unless the client asked for one"
    assert chunks[-1].choices[0].finish_reason == "length"

    with_usage = list(
        client.chat.completions.create(
            model="tiny-a",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=4,
            stream=True,
            extra_body=NO_EOS,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].usage.completion_tokens == 4

    completion = client.completions.create(model="tiny-a", prompt="Once upon", max_tokens=5, extra_body=NO_EOS)
    assert completion.usage.completion_tokens == 5
    streamed = list(
        client.completions.create(model="tiny-a", prompt="Once upon", max_tokens=5, stream=True, extra_body=NO_EOS)
    )
    assert streamed[-1].choices[0].finish_reason == "length"


def test_max_tokens_is_capped_per_model(stack: Stack) -> None:
    client = stack.client(stack.keys["admin"])
    capped = client.completions.create(model="tiny-b", prompt="x", max_tokens=400, extra_body=NO_EOS)
    assert capped.usage.completion_tokens == 48


def test_auth_errors_in_openai_shape(stack: Stack) -> None:
    for key, code in ((None, "missing_api_key"), ("sk-wrong", "invalid_api_key")):
        response = stack.post("/v1/chat/completions", key=key, content=b'{"model":"tiny-a","messages":[]}')
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        stack.client("sk-not-a-key").models.list()


def test_model_not_allowed_unknown_and_malformed(stack: Stack) -> None:
    client = stack.client(stack.keys["usera"])
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="tiny-b", messages=[{"role": "user", "content": "x"}], max_tokens=2)
    assert denied.value.body["code"] == "model_not_allowed"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}], max_tokens=2)
    assert "tiny-a" in missing.value.body["message"] and "tiny-b" not in missing.value.body["message"]
    key = stack.keys["usera"]
    bad_json = stack.post("/v1/chat/completions", key=key, content=b'{"model": "tiny-a", "messages": [')
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    wrong_type = stack.post("/v1/completions", key=key, content=b'{"model":"tiny-a","prompt":"x","max_tokens":"ten"}')
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["param"] == "max_tokens"
    bad_messages = stack.post("/v1/chat/completions", key=key, content=b'{"model":"tiny-a","messages":"hi"}')
    assert bad_messages.status_code == 400 and "error" in bad_messages.json()
    assert "Traceback" not in bad_messages.text


def test_oversized_body_is_413(stack: Stack) -> None:
    big = json.dumps({"model": "tiny-a", "prompt": "x" * (2 * 1024 * 1024)})
    response = stack.post("/v1/completions", key=stack.keys["usera"], content=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_models_list_is_filtered_per_key(stack: Stack) -> None:
    assert [m.id for m in stack.client(stack.keys["usera"]).models.list()] == ["tiny-a"]
    assert [m.id for m in stack.client(stack.keys["userb"]).models.list()] == ["tiny-b"]
    assert sorted(m.id for m in stack.client(stack.keys["admin"]).models.list()) == sorted(ALL_MODELS)
    assert stack.get("/v1/models/tiny-b", stack.keys["usera"]).status_code == 404


def test_admin_endpoint_needs_admin_and_shows_pinning(stack: Stack) -> None:
    assert stack.get("/admin/models", stack.keys["usera"]).status_code == 403
    response = stack.get("/admin/models", stack.keys["admin"])
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()["models"]}
    assert set(models) == set(ALL_MODELS)
    assert models["tiny-a"]["state"] == "ready"
    assert models["tiny-a"]["engine_kwargs"]["load_format"] == "safetensors"
    assert models["tiny-a"]["engine_kwargs"]["trust_remote_code"] is False
    assert models["tiny-a"]["revision_pinned"] is False


def test_request_id_is_honoured_and_audited(stack: Stack) -> None:
    response = stack.post(
        "/v1/completions",
        key=stack.keys["usera"],
        headers={"X-Request-ID": "e2e-req-42"},
        content=b'{"model":"tiny-a","prompt":"secret prompt text","max_tokens":3,"ignore_eos":true}',
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "e2e-req-42"
    lines = [json.loads(line) for line in stack.audit.read_text().splitlines()]
    line = next(entry for entry in lines if entry["request_id"] == "e2e-req-42")
    assert line["key"] == "usera" and line["role"] == "user" and line["model"] == "tiny-a"
    assert line["status"] == 200 and line["stream"] is False
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] == 3
    assert line["latency_ms"] > 0 and line["client"] == "127.0.0.1"
    text = stack.audit.read_text()
    assert "secret prompt text" not in text, "prompts are not logged by default"
    for key in stack.keys.values():
        assert key not in text


def test_stream_audit_has_time_to_first_token(stack: Stack) -> None:
    client = stack.client(stack.keys["usera"])
    list(
        client.chat.completions.create(
            model="tiny-a",
            messages=[{"role": "user", "content": "ttft"}],
            max_tokens=6,
            stream=True,
            extra_headers={"X-Request-ID": "e2e-stream-1"},
            extra_body=NO_EOS,
        )
    )
    line = next(json.loads(l) for l in stack.audit.read_text().splitlines() if "e2e-stream-1" in l)  # noqa: E741
    assert line["stream"] is True and line["status"] == 200
    assert 0 < line["ttft_ms"] <= line["latency_ms"]
    assert line["completion_tokens"] == 6


def test_refusals_are_audited_with_reason(stack: Stack) -> None:
    stack.post("/v1/completions", key="sk-bad", headers={"X-Request-ID": "e2e-denied-1"}, content=b"{}")
    line = next(json.loads(l) for l in stack.audit.read_text().splitlines() if "e2e-denied-1" in l)  # noqa: E741
    assert line["status"] == 401 and line["error"] == "invalid_api_key" and line["key"] is None


def test_revoked_key_is_refused_without_restart(stack: Stack) -> None:
    from tests.e2e.conftest import _cli

    made = _cli(stack.root, stack.env, "keys", "create", "temp", "--models", "tiny-a")
    key = made.stdout.strip()
    time.sleep(1.5)  # the ingress re-reads .secrets at most once a second
    assert stack.get("/v1/models", key).status_code == 200
    assert _cli(stack.root, stack.env, "keys", "revoke", "temp").returncode == 0
    time.sleep(1.5)
    assert stack.get("/v1/models", key).status_code == 401


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1 :].rsplit("} ", 1)
            out.append((dict(re.findall(r'(\w+)="([^"]*)"', labels)), float(value)))
    return out


def test_metrics_count_requests(stack: Stack) -> None:
    def count() -> float:
        text = httpx.get(stack.metrics_url, timeout=30).text
        return sum(
            value
            for labels, value in _samples(text, "ray_appliance_requests_total")
            if labels.get("key") == "admin" and labels.get("model") == "tiny-b" and labels.get("status") == "200"
        )

    before = count()
    client = stack.client(stack.keys["admin"])
    for _ in range(3):
        client.completions.create(model="tiny-b", prompt="count me", max_tokens=2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and count() < before + 3:
        time.sleep(2)
    assert count() >= before + 3
    text = httpx.get(stack.metrics_url, timeout=30).text
    for name in (
        "ray_appliance_request_latency_seconds_bucket",
        "ray_appliance_prompt_tokens_total",
        "ray_appliance_auth_failures_total",
        "ray_appliance_requests_in_flight",
    ):
        assert name in text, name
    assert "ray_vllm" in text or "vllm:" in text, "vLLM's own metrics stay exposed"


def test_httpx_streaming_first_event_before_the_end(stack: Stack) -> None:
    body = {"model": "tiny-a", "messages": [{"role": "user", "content": "go"}], "max_tokens": 48, "stream": True}
    headers = {"Authorization": f"Bearer {stack.keys['usera']}"}
    with httpx.stream("POST", stack.url + "/v1/chat/completions", json=body, headers=headers, timeout=120) as r:
        start = time.monotonic()
        events = []
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append((time.monotonic() - start, line))
    assert events[-1][1] == "data: [DONE]"
    assert len(events) > 3
    assert events[0][0] < events[-1][0]


def test_smoke_script_passes_against_the_stack(stack: Stack) -> None:
    import subprocess
    import sys

    from tests.helpers import ROOT

    for key, summary in (
        ("usera", "13 passed, 0 failed, 2 skipped"),
        ("admin", "15 passed, 0 failed\n"),
        ("embedder", "7 passed, 0 failed, 8 skipped"),
    ):
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts/test_api.py"), "--url", stack.url, "--key", stack.keys[key]],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert summary in result.stdout, (key, result.stdout)


@pytest.mark.security
def test_public_health_says_status_only_and_admins_see_details(stack: Stack) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7"}  # as nginx forwards every outside request
    public = httpx.get(stack.url + "/health/ready", headers=forwarded, timeout=60)
    # "pii": the PII service's state word (the e2e stack masks PII); nothing else
    assert public.status_code == 200 and set(public.json()) == {"status", "models_ready", "models_total", "pii"}
    assert public.json()["pii"] == "ready"
    assert public.json()["models_ready"] == public.json()["models_total"] == len(ALL_MODELS)
    admin = httpx.get(
        stack.url + "/health/startup",
        timeout=60,
        headers={**forwarded, "Authorization": f"Bearer {stack.keys['admin']}"},
    )
    assert set(admin.json()["models"]) == set(ALL_MODELS)
    assert httpx.get(stack.url + "/docs", timeout=30).status_code == 404
    assert httpx.get(stack.url + "/openapi.json", timeout=30).status_code == 404


@pytest.mark.security
def test_engine_errors_carry_no_internals_and_bad_roles_are_refused(stack: Stack) -> None:
    key = stack.keys["usera"]
    too_long = stack.post(
        "/v1/completions",
        key=key,
        headers={"X-Request-ID": "e2e-long-1"},
        content=json.dumps({"model": "tiny-a", "prompt": "hello world " * 3000, "max_tokens": 2}),
    )
    assert too_long.status_code == 400, too_long.text
    error = too_long.json()["error"]
    for internal in ("Internal exception", "original exception", "Request ID: None", "ray.", "OpenAIHTTPException"):
        assert internal not in error["message"], error
    assert error["message"].endswith("(request id: e2e-long-1)") and error["type"] == "invalid_request_error"
    for messages, param in (
        ([{"role": "wizard", "content": "x"}], "messages[0].role"),
        ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id"),
    ):
        refused = stack.post(
            "/v1/chat/completions",
            key=key,
            content=json.dumps({"model": "tiny-a", "messages": messages, "max_tokens": 2}),
        )
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param


@pytest.mark.security
def test_token_budget_headers_and_429_with_retry_after(stack: Stack) -> None:
    key = stack.keys["budget"]  # tpm 200, rpm 100; tiny-a's max_tokens_cap is 48
    body = json.dumps({"model": "tiny-a", "prompt": "Once upon", "max_tokens": 40, "stream": True, "ignore_eos": True})
    first = stack.post("/v1/completions", key=key, content=body)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-tokens"] == "200" and first.headers["x-ratelimit-limit-requests"] == "100"
    assert int(first.headers["x-ratelimit-remaining-tokens"]) < 200
    statuses = [first.status_code]
    for _ in range(8):
        response = stack.post("/v1/completions", key=key, content=body)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert response.json()["error"]["code"] == "rate_limit_exceeded" and int(response.headers["retry-after"]) >= 1
    lines = [json.loads(line) for line in stack.audit.read_text().splitlines() if '"key":"budget"' in line]
    completed = [line for line in lines if line["status"] == 200]
    assert completed and all(line["completion_tokens"] == 40 for line in completed), "usage settles every stream"
    assert lines[-1]["status"] == 429
