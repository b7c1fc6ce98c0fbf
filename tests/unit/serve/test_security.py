"""The gate's hardening (issue #15): each case failed on the gate before it, through the real Gate class."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any

import pytest

from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, Role
from appliance.serve.audit import AuditLog
from appliance.serve.checks import RequestLimits
from appliance.serve.gate import DETAIL_STATE, OTHER_LABEL, ROUTES, Gate, GateSettings
from appliance.serve.keystore import KeyStore
from tests.unit.serve.test_gate import KEY, Downstream, RecordingMetrics, audit_lines, auth, call

pytestmark = pytest.mark.security

ADMIN_KEY = "sk-admin-security"
LIMITS = RequestLimits(max_tokens=16, max_n=2, max_logprobs=5, max_messages=4, max_prompts=3, max_tools=2, max_stop=2)


@pytest.fixture
def parts(tmp_path: Path):
    downstream = Downstream()
    metrics = RecordingMetrics()
    keys = KeyStore(
        (
            ApiKeyRecord("alice", Role.USER, ("a",), hash_key(KEY)),
            ApiKeyRecord("ops", Role.ADMIN, ("*",), hash_key(ADMIN_KEY)),
        )
    )
    gate = Gate(
        downstream, GateSettings(True, 1 << 20, {"a": LIMITS, "b": 16}), keys, AuditLog(tmp_path / "audit.log"), metrics
    )
    return gate, downstream, metrics, tmp_path / "audit.log"


def _guarded_routes() -> list[tuple[str, str]]:
    return [
        (method, path.replace("{model:path}", "a"))
        for name, (method, path) in ROUTES.items()
        if not name.startswith("health")
    ]


def _bad_headers(count: int) -> list[str]:
    """Wrong keys and every other spelling of the right one: none may pass the gate."""
    rng = random.Random(15)
    spellings = [
        f"bearer {KEY}",
        f"BEARER {KEY}",
        f"Bearer  {KEY}",
        f"Bearer {KEY} ",
        f" Bearer {KEY}",
        f"Bearer\t{KEY}",
        f"Bearer {KEY}\x0b",
        f"Bearer {KEY}\xa0",
        f"Bearer\xa0{KEY}",
        f"Bearer {KEY}\t",
        f"Bearer {KEY},",
        f"Bearer {KEY}x",
        f"Bearer {KEY[:-1]}",
        f"Token {KEY}",
        f"Basic {KEY}",
        KEY,
        f"Bearer {KEY} {KEY}",
        f"Bearer:{KEY}",
        f"Bearer={KEY}",
        "Bearer",
        "Bearer ",
        "",
        " ",
        f"Bearer {KEY.upper()}",
        f"Bearer {KEY}\r",
        f"Bearer {KEY}\x00",
        f"Bearer {ADMIN_KEY}\n",
    ]
    alphabet = string.printable + "\xa0\x85\u2028"
    while len(spellings) < count:
        kind = rng.randrange(3)
        noise = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
        if kind == 0:
            spellings.append("Bearer " + noise)
        elif kind == 1:
            cut = rng.randrange(len(KEY))
            spellings.append(f"Bearer {KEY[:cut]}{noise}{KEY[cut:]}")
        else:
            spellings.append(noise + f" {KEY}")
    return spellings[:count]


def test_a_thousand_malformed_or_wrong_authorization_headers_all_fail_on_every_route(parts) -> None:
    gate, downstream, *_ = parts
    routes = _guarded_routes()
    headers = _bad_headers(1200)
    passed = []
    for number, header in enumerate(headers):
        method, path = routes[number % len(routes)]
        body = b'{"model":"a","prompt":"p"}' if method == "POST" else b""
        status, _, answer = call(gate, path, body, {"authorization": header}, method=method)
        if status != 401:
            passed.append((header, path, status))
        else:
            assert json.loads(answer)["error"]["type"] == "authentication_error"
    assert passed == [] and downstream.seen == []
    assert call(gate, "/v1/completions", b'{"model":"a","prompt":"p"}', auth())[0] == 200, "the canonical form passes"


def test_unknown_paths_are_404_before_any_key_check(parts) -> None:
    gate, downstream, *_ = parts
    for path in (
        "/",
        "/v2/chat/completions",
        "/v1/chat/completions/",
        "/v1//completions",
        "/docs",
        "/openapi.json",
        "/admin/",
        "/admin/anything",
        "/v1/assistants",
        "/metrics",
        "/-/routes",
        "/health",
    ):
        status, _, body = call(gate, path, b"", auth(), method="GET")
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found", path
    assert downstream.seen == []


def test_root_path_is_stripped_like_starlette_does(parts) -> None:
    gate, downstream, *_ = parts
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    import asyncio

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/models",
        "root_path": "/api",
        "client": ("1.1.1.1", 1),
        "headers": [(b"authorization", f"Bearer {KEY}".encode())],
    }
    asyncio.run(gate(scope, receive, send))
    assert sent[0]["status"] == 200 and len(downstream.seen) == 1


def test_health_details_only_for_admins_and_probes_from_inside(parts) -> None:
    gate, downstream, *_ = parts
    seen = downstream.seen
    call(gate, "/health/ready", method="GET", headers={"x-forwarded-for": "203.0.113.9"})
    call(gate, "/health/ready", method="GET", headers={"x-forwarded-for": "203.0.113.9", **auth()})
    call(
        gate,
        "/health/ready",
        method="GET",
        headers={"x-forwarded-for": "203.0.113.9", "authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert [s["scope"]["state"][DETAIL_STATE] for s in seen] == [False, False, True]
    assert all(b"authorization" not in dict(s["scope"]["headers"]) for s in seen)


def test_a_reply_saying_done_does_not_end_the_stream_and_usage_is_audited(parts, tmp_path: Path) -> None:
    gate, _, metrics, audit = parts
    said = {"choices": [{"index": 0, "delta": {"content": "data: [DONE]\n\n and more"}}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 9}}
    events = f"data: {json.dumps(said)}\n\ndata: {json.dumps(said)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n"
    raw = events.encode()

    class Talker:
        async def __call__(self, scope, receive, send) -> None:
            await receive()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            for start in range(0, len(raw), 7):  # split anywhere, even inside an event
                await send({"type": "http.response.body", "body": raw[start : start + 7], "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    gate.app = Talker()
    status, _, body = call(
        gate,
        "/v1/chat/completions",
        b'{"model":"a","messages":[{"role":"user","content":"say it"}],"stream":true}',
        auth(),
    )
    assert status == 200
    assert body.count(b"and more") == 2 and body.endswith(b"data: [DONE]\n\n")
    assert b'"usage"' not in body, "the usage event the client did not ask for is taken out"
    (line,) = audit_lines(audit)
    assert (line["prompt_tokens"], line["completion_tokens"]) == (4, 9)


def test_metric_labels_stay_within_configured_models_under_300_random_ones(parts) -> None:
    gate, _, metrics, _ = parts
    rng = random.Random(3)
    for _ in range(300):
        model = "".join(rng.choice(string.ascii_letters + "@.") for _ in range(rng.randrange(1, 30)))
        call(gate, "/v1/completions", json.dumps({"model": model, "prompt": "p"}).encode(), auth())
    call(gate, "/v1/completions", b'{"model":"a","prompt":"p"}', auth())
    call(gate, "/v1/completions", b'{"model":"b","prompt":"p"}', auth())  # configured, but not this key's
    labels = {done["model"] for done in metrics.done}
    assert labels <= {"a", "b", OTHER_LABEL} and len(metrics.done) == 302


def test_a_huge_model_string_is_not_echoed(parts) -> None:
    gate, *_ = parts
    status, _, body = call(
        gate, "/v1/completions", json.dumps({"model": "x" * 100_000, "prompt": "p"}).encode(), auth()
    )
    assert status == 404 and len(body) < 1000


def test_spoofed_forwarded_for_is_not_recorded(parts) -> None:
    gate, _, _, audit = parts
    call(gate, "/v1/completions", b'{"model":"a","prompt":"p"}', auth({"x-forwarded-for": "6.6.6.6, 172.18.0.5"}))
    call(gate, "/v1/completions", b'{"model":"zz","prompt":"p"}', auth({"x-forwarded-for": "6.6.6.6,172.18.0.5"}))
    assert [line["client"] for line in audit_lines(audit)] == ["172.18.0.5", "172.18.0.5"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "p", "n": 3}, "n"),
        ({"prompt": "p", "best_of": 3}, "best_of"),
        ({"prompt": "p", "logprobs": 6}, "logprobs"),
        ({"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 6}, "top_logprobs"),
        ({"prompt": "p", "prompt_logprobs": 6}, "prompt_logprobs"),
        ({"prompt": ["a", "b", "c", "d"]}, "prompt"),
        ({"messages": [{"role": "user", "content": "x"}] * 5}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}] * 3}, "tools"),
        ({"prompt": "p", "stop": ["a", "b", "c"]}, "stop"),
        ({"prompt": "p", "stop_token_ids": [1, 2, 3]}, "stop_token_ids"),
        ({"prompt": "p", "min_tokens": 17}, "min_tokens"),
        ({"prompt": "p", "max_tokens": 4, "min_tokens": 5}, "min_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "chat_template": "{{ 7*7 }}"}, "chat_template"),
        ({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"a": 1}}, "chat_template_kwargs"),
        ({"messages": [{"role": "hacker", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "user", "content": "x", "tool_calls": []}]}, "messages[0].tool_calls"),
        ({"messages": ["hello"]}, "messages[0]"),
        ({"prompt": "p", "n": "2"}, "n"),
    ],
)
def test_each_capped_or_invalid_parameter_is_refused_naming_it(parts, body: dict[str, Any], param: str) -> None:
    gate, downstream, *_ = parts
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    status, _, answer = call(gate, path, json.dumps({"model": "a", **body}).encode(), auth())
    error = json.loads(answer)["error"]
    assert status == 400 and error["param"] == param and error["type"] == "invalid_request_error", error
    assert downstream.seen == []


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_are_refused(parts, number: bytes) -> None:
    gate, downstream, *_ = parts
    status, _, answer = call(
        gate, "/v1/completions", b'{"model":"a","prompt":"p","temperature":' + number + b"}", auth()
    )
    assert status == 400 and json.loads(answer)["error"]["code"] == "invalid_json"
    assert downstream.seen == []


def test_within_the_caps_everything_passes(parts) -> None:
    gate, downstream, *_ = parts
    body = {
        "model": "a",
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "n": 2,
        "logprobs": True,
        "top_logprobs": 5,
        "stop": ["x", "y"],
        "tools": [{"type": "function"}] * 2,
        "min_tokens": 3,
        "temperature": 0.5,
    }
    status, _, _ = call(gate, "/v1/chat/completions", json.dumps(body).encode(), auth())
    assert status == 200 and len(downstream.seen) == 1


def test_engine_errors_reach_the_client_without_internals(parts) -> None:
    gate, _, _, audit = parts
    ray_message = (
        "Message: This model's maximum context length is 64 tokens. (Request ID: abc-1), Internal exception: "
        "ray.llm._internal.serve.core.configs.openai_api_models.OpenAIHTTPException (Request ID: None), "
        "original exception: \x1b[36mray::LLMServer\x1b[0m Traceback (most recent call last): ..."
    )

    class Failing:
        async def __call__(self, scope, receive, send) -> None:
            await receive()
            body = json.dumps({"error": {"message": ray_message, "type": "OpenAIHTTPException", "code": 400}}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})

    gate.app = Failing()
    status, headers, body = call(
        gate, "/v1/completions", b'{"model":"a","prompt":"p"}', auth({"x-request-id": "rid-9"})
    )
    error = json.loads(body)["error"]
    assert status == 400 and int(headers[b"content-length"]) == len(body)
    assert error == {
        "message": "This model's maximum context length is 64 tokens. (request id: rid-9)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert audit_lines(audit)[0]["status"] == 400


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _budget_gate(tmp_path: Path, limits, downstream=None):
    from appliance.config.secrets import KeyLimits
    from appliance.serve.budget import Budgets

    clock = FakeClock()
    keys = KeyStore((ApiKeyRecord("alice", Role.USER, ("a",), hash_key(KEY), KeyLimits(**limits)),))
    metrics = RecordingMetrics()
    gate = Gate(
        downstream or Downstream(),
        GateSettings(True, 1 << 20, {"a": 16}),
        keys,
        AuditLog(tmp_path / "audit.log"),
        metrics,
        budgets=Budgets(clock=clock, wall=lambda: 1_700_000_000.0),
    )
    return gate, clock, metrics


def test_budget_rpm_refuses_with_retry_after_and_openai_headers(tmp_path: Path) -> None:
    gate, clock, metrics = _budget_gate(tmp_path, {"rpm": 2})
    body = b'{"model":"a","prompt":"p","max_tokens":4}'
    first = call(gate, "/v1/completions", body, auth())
    assert first[0] == 200 and first[1][b"x-ratelimit-limit-requests"] == b"2"
    assert first[1][b"x-ratelimit-remaining-requests"] == b"1"
    assert call(gate, "/v1/completions", body, auth())[0] == 200
    status, headers, answer = call(gate, "/v1/completions", body, auth())
    assert status == 429 and json.loads(answer)["error"]["type"] == "rate_limit_error"
    assert int(headers[b"retry-after"]) >= 1 and b"x-ratelimit-reset-requests" in headers
    assert "budget:alice:rpm" in metrics.auth
    clock.now += 60
    assert call(gate, "/v1/completions", body, auth())[0] == 200, "the bucket refills"


def test_budget_settles_streams_to_usage_and_refunds_failures_under_concurrency(tmp_path: Path) -> None:
    import asyncio

    from appliance.serve.budget import Budgets

    class Streams:
        """Streams that report 5 tokens used; every third request fails with a 500 instead."""

        def __init__(self) -> None:
            self.count = 0

        async def __call__(self, scope, receive, send) -> None:
            await receive()
            self.count += 1
            if self.count % 3 == 0:
                await send({"type": "http.response.start", "status": 500, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            for _ in range(3):
                await asyncio.sleep(0)  # let the other streams run
                chunk = {"choices": [{"index": 0, "delta": {"content": "x"}}]}
                await send(
                    {"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(), "more_body": True}
                )
            usage = {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}
            await send(
                {"type": "http.response.body", "body": f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode()}
            )

    gate, _clock, _ = _budget_gate(tmp_path, {"tpm": 10_000, "tokens_per_day": 100_000}, Streams())
    budgets: Budgets = gate.budgets

    async def one() -> int:
        sent: list[dict[str, Any]] = []
        body = b'{"model":"a","prompt":"p","max_tokens":16,"stream":true}'
        incoming = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/completions",
            "client": ("10.0.0.1", 1),
            "headers": [(b"authorization", f"Bearer {KEY}".encode())],
        }
        await gate(scope, receive, send)
        return sent[0]["status"]

    async def many() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(30)))

    statuses = asyncio.run(many())
    assert statuses.count(200) == 20 and statuses.count(500) == 10
    snapshot = budgets.snapshot("alice")
    assert snapshot.tokens_today == 20 * 5, snapshot  # settled to usage; failures refunded
    assert snapshot.tokens == 10_000 - 20 * 5, snapshot  # the clock stood still: no refill hides a leak


_PARAMS = [
    "model",
    "prompt",
    "messages",
    "n",
    "best_of",
    "logprobs",
    "top_logprobs",
    "prompt_logprobs",
    "stop",
    "stop_token_ids",
    "min_tokens",
    "max_tokens",
    "max_completion_tokens",
    "tools",
    "functions",
    "stream",
    "stream_options",
    "chat_template",
    "chat_template_kwargs",
    "temperature",
    "user",
    "tool_choice",
]


def _json_values():
    from hypothesis import strategies as st

    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-5, 10**6)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
        | st.sampled_from(["a", "b", "user", "tool", "assistant"])
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=6)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "role",
                        "content",
                        "tool_call_id",
                        "tool_calls",
                        "function",
                        "name",
                        "type",
                        "include_usage",
                        "text",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=25,
    )


def test_fuzzed_bodies_get_a_clean_answer_never_an_exception() -> None:
    """Any JSON body: check_generation forwards it or refuses it with an ApiError, nothing else escapes."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from appliance.serve.checks import Principal, check_generation
    from appliance.serve.errors import ApiError

    principal = Principal("alice", Role.USER, ("a",))

    @settings(max_examples=1500, deadline=None, derandomize=True)
    @given(st.dictionaries(st.sampled_from(_PARAMS), _json_values(), max_size=8), st.booleans())
    def check(body: dict[str, Any], chat: bool) -> None:
        body.setdefault("model", "a")
        try:
            forwarded, facts = check_generation(
                json.dumps(body).encode(), principal, {"a": LIMITS}, chat=chat, log_prompt=True
            )
        except ApiError as err:
            assert 400 <= err.status < 500 and json.loads(err.body())["error"]["message"]
            return
        assert facts.reserve_tokens >= 1 and json.loads(forwarded)["model"] == "a"

    check()
