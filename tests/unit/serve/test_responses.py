"""The Responses API at the gate: stateless (what needs a stored response is refused and says why), output
capped like chat, keys and model kinds, budgets settled with the engine's input/output tokens, audit lines,
and the stream's first token and usage read from Responses events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, KeyLimits, Role
from appliance.serve.audit import AuditLog
from appliance.serve.checks import Principal, RequestLimits
from appliance.serve.errors import ApiError
from appliance.serve.gate import Gate, GateSettings
from appliance.serve.keystore import KeyStore
from appliance.serve.responses import STATELESS_CODE, check_responses
from appliance.serve.usage import UsageWatcher
from tests.unit.serve.pii.test_bookend import KEY
from tests.unit.serve.pii.test_bookend import post as post_to
from tests.unit.serve.test_gate import RecordingMetrics, audit_lines

CAPS = {"gen": RequestLimits(max_tokens=16, max_tools=2, max_messages=3), "emb": RequestLimits(16, task="embed")}
ALICE = ApiKeyRecord("alice", Role.USER, ("gen", "emb"), hash_key(KEY), KeyLimits(tpm=1000))


def check(body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    raw, facts = check_responses(json.dumps(body).encode(), Principal.from_record(ALICE), CAPS, log_prompt=True)
    return json.loads(raw), facts


def refused(body: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        check(body)
    return caught.value


def test_output_is_capped_and_nothing_is_stored() -> None:
    body, facts = check({"model": "gen", "input": "hello", "store": True})
    assert body["max_output_tokens"] == 16 and body["store"] is False
    assert check({"model": "gen", "input": "hi", "max_output_tokens": 99})[0]["max_output_tokens"] == 16
    assert check({"model": "gen", "input": "hi", "max_output_tokens": 4})[0]["max_output_tokens"] == 4
    assert facts.stream is False and facts.prompt == "user: hello" and facts.reserve_tokens > 16


def test_what_needs_a_stored_response_is_refused_with_the_reason() -> None:
    for field, value in (("previous_response_id", "resp_1"), ("conversation", "conv_1"), ("background", True)):
        err = refused({"model": "gen", "input": "hi", field: value})
        assert (err.status, err.code, err.param) == (400, STATELESS_CODE, field)
        assert "stateless" in err.message


def test_keys_kinds_and_limits() -> None:
    assert refused({"model": "emb", "input": "hi"}).code == "wrong_model_type"
    assert refused({"model": "nope", "input": "hi"}).status == 404
    assert refused({"model": "gen"}).code == "missing_parameter"
    assert refused({"model": "gen", "input": 5}).code == "invalid_type"
    assert refused({"model": "gen", "input": ["a"] * 4}).code == "parameter_above_limit"
    assert refused({"model": "gen", "input": "x", "tools": [{}, {}, {}]}).param == "tools"
    assert refused({"model": "gen", "input": "x", "max_output_tokens": 0}).param == "max_output_tokens"
    assert refused({"model": "gen", "input": "x", "stream": "yes"}).param == "stream"
    items = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    ]
    assert check({"model": "gen", "input": items, "instructions": "be kind"})[1].prompt == (
        "instructions: be kind\nsystem: be brief\nuser: hi"
    )


RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]}],
    "usage": {
        "input_tokens": 5,
        "output_tokens": 3,
        "total_tokens": 8,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    },
}


def event(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


STREAM = [
    {"type": "response.created", "sequence_number": 0, "response": {**RESPONSE, "status": "in_progress", "output": []}},
    {
        "type": "response.output_text.delta",
        "sequence_number": 1,
        "item_id": "m",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hel",
        "logprobs": [],
    },
    {
        "type": "response.output_text.delta",
        "sequence_number": 2,
        "item_id": "m",
        "output_index": 0,
        "content_index": 0,
        "delta": "lo",
        "logprobs": [],
    },
    {"type": "response.completed", "sequence_number": 3, "response": RESPONSE},
]


def test_stream_first_token_and_usage_from_responses_events() -> None:
    watcher = UsageWatcher(stream=True, strip_usage=False)
    raw = b"".join(event(e) for e in STREAM)
    out = watcher.on_body({"type": "http.response.body", "body": raw[:50], "more_body": True}, 1.0)
    out2 = watcher.on_body({"type": "http.response.body", "body": raw[50:], "more_body": False}, 2.0)
    assert out["body"] + out2["body"] == raw  # passed on unchanged
    assert watcher.first_token_at == 2.0  # the first delta event was complete only in the second chunk
    assert (watcher.usage()["prompt_tokens"], watcher.usage()["completion_tokens"]) == (5, 3)


def test_non_stream_usage_names_are_mapped() -> None:
    watcher = UsageWatcher(stream=False, strip_usage=False)
    watcher.on_body({"type": "http.response.body", "body": json.dumps(RESPONSE).encode()}, 0.0)
    assert (watcher.usage()["prompt_tokens"], watcher.usage()["completion_tokens"]) == (5, 3)


class ResponsesEngine:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope, receive, send) -> None:
        body = json.loads((await receive())["body"])
        self.seen.append(body)
        if body.get("stream"):
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            for payload in STREAM:
                await send({"type": "http.response.body", "body": event(payload), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        payload = json.dumps(RESPONSE).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


def post(gate: Gate, body: dict[str, Any]) -> tuple[int, bytes]:
    status, _headers, answer = post_to(gate, "/v1/responses", body)
    return status, answer


def test_through_the_gate_audited_budgeted_and_refusals_never_forwarded(tmp_path: Path) -> None:
    engine = ResponsesEngine()
    gate = Gate(
        engine,
        GateSettings(True, 10_000, dict(CAPS), audit_prompts=True),
        KeyStore((ALICE,)),
        AuditLog(tmp_path / "audit.log"),
        RecordingMetrics(),
    )
    status, body = post(gate, {"model": "gen", "input": "hello"})
    assert status == 200 and json.loads(body)["output"][0]["content"][0]["text"] == "Hello"
    assert engine.seen[0]["max_output_tokens"] == 16 and engine.seen[0]["store"] is False
    status, body = post(gate, {"model": "gen", "input": "hello", "stream": True})
    assert status == 200 and body.count(b"event: ") == len(STREAM)
    status, body = post(gate, {"model": "gen", "input": "hi", "previous_response_id": "resp_0"})
    assert status == 400 and json.loads(body)["error"]["code"] == STATELESS_CODE
    assert len(engine.seen) == 2
    lines = audit_lines(tmp_path / "audit.log")
    assert [(line["endpoint"], line["status"], line["prompt_tokens"], line["completion_tokens"]) for line in lines] == [
        ("/v1/responses", 200, 5, 3),
        ("/v1/responses", 200, 5, 3),
        ("/v1/responses", 400, None, None),
    ]
    assert lines[1]["stream"] is True and lines[1]["ttft_ms"] is not None and lines[0]["prompt"] == "user: hello"
    assert gate.budgets.snapshot("alice").tokens_today == 16  # twice 5 + 3, the engine's counts
