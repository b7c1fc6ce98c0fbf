"""Embeddings, score and rerank through the gate: which model kinds each route takes, the input caps, the
encodings, budgets settled with the engine's input tokens, the audit line, and unknown paths still 404."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, KeyLimits, Role
from appliance.serve.audit import AuditLog
from appliance.serve.budget import estimate_prompt_tokens
from appliance.serve.checks import RequestLimits, check_generation, check_pooling
from appliance.serve.errors import ApiError
from appliance.serve.gate import ROUTES, Gate, GateSettings, route_of
from appliance.serve.keystore import KeyStore
from tests.unit.serve.test_gate import RecordingMetrics, audit_lines

KEY = "sk-pool-test"
CAPS = {
    "gen": RequestLimits(max_tokens=16),
    "emb": RequestLimits(max_tokens=16, task="embed", max_inputs=3),
    "rank": RequestLimits(max_tokens=16, task="score", max_inputs=3),
}
ALICE = ApiKeyRecord("alice", Role.USER, ("gen", "emb"), hash_key(KEY), KeyLimits(tpm=1000))


def principal():
    from appliance.serve.checks import Principal

    return Principal.from_record(ALICE)


def refused(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def pool(path: str, body: dict[str, Any]) -> tuple[bytes, Any]:
    return check_pooling(json.dumps(body).encode(), principal(), CAPS, path)


# --- the pure checks -----------------------------------------------------------------------------------------


def test_each_route_takes_only_its_kind_of_model() -> None:
    wrong = refused(lambda: pool("/v1/embeddings", {"model": "gen", "input": "x"}))
    assert (wrong.status, wrong.code, wrong.param) == (400, "wrong_model_type", "model")
    assert "generate model" in wrong.message and "emb" in wrong.message  # names the key's embedding models
    chat = refused(
        lambda: check_generation(
            b'{"model":"emb","messages":[{"role":"user","content":"x"}]}', principal(), CAPS, chat=True
        )
    )
    assert (chat.status, chat.code) == (400, "wrong_model_type") and "embed model" in chat.message
    completions = refused(lambda: check_generation(b'{"model":"emb","prompt":"x"}', principal(), CAPS, chat=False))
    assert completions.code == "wrong_model_type"
    # an embedding model scores and reranks (cosine); a score model does not embed
    assert pool("/v1/score", {"model": "emb", "text_1": "a", "text_2": ["b", "c"]})[1].model == "emb"
    assert pool("/v1/rerank", {"model": "emb", "query": "a", "documents": ["b"]})[1].model == "emb"


def test_allowlist_and_unknown_models_come_before_the_kind() -> None:
    assert refused(lambda: pool("/v1/rerank", {"model": "rank", "query": "a", "documents": ["b"]})).status == 403
    assert refused(lambda: pool("/v1/embeddings", {"model": "nope", "input": "x"})).status == 404


def test_inputs_are_capped_per_request() -> None:
    body, facts = pool("/v1/embeddings", {"model": "emb", "input": ["a", "b", "c"]})
    assert json.loads(body)["input"] == ["a", "b", "c"] and not facts.stream
    over = refused(lambda: pool("/v1/embeddings", {"model": "emb", "input": ["a", "b", "c", "d"]}))
    assert (over.status, over.code, over.param) == (400, "parameter_above_limit", "input")
    assert "at most 3" in over.message
    assert pool("/v1/embeddings", {"model": "emb", "input": [1, 2, 3, 4, 5]})  # one input as token ids
    docs = refused(lambda: pool("/v1/rerank", {"model": "emb", "query": "q", "documents": list("abcd")}))
    assert docs.param == "documents"
    text_2 = refused(lambda: pool("/v1/score", {"model": "emb", "text_1": "q", "text_2": list("abcd")}))
    assert text_2.param == "text_2"


def test_required_inputs_and_their_types() -> None:
    assert refused(lambda: pool("/v1/score", {"model": "emb", "text_1": "q"})).param == "text_2"
    assert refused(lambda: pool("/v1/rerank", {"model": "emb", "documents": ["d"]})).code == "missing_parameter"
    assert refused(lambda: pool("/v1/embeddings", {"model": "emb", "input": {"a": 1}})).code == "invalid_type"


def test_encodings_and_dimensions() -> None:
    for encoding in ("float", "base64"):
        assert pool("/v1/embeddings", {"model": "emb", "input": "x", "encoding_format": encoding})
    for encoding in ("bytes", "bytes_only", 3):
        error = refused(lambda e=encoding: pool("/v1/embeddings", {"model": "emb", "input": "x", "encoding_format": e}))
        assert (error.status, error.param) == (400, "encoding_format")
    assert refused(lambda: pool("/v1/embeddings", {"model": "emb", "input": "x", "dimensions": 0})).status == 400
    assert refused(lambda: pool("/v1/embeddings", {"model": "emb", "input": "x", "dimensions": "8"})).status == 400
    assert pool("/v1/embeddings", {"model": "emb", "input": "x", "dimensions": 8})


def test_the_budget_reserves_the_inputs_only() -> None:
    body = {"model": "emb", "input": ["a" * 30, "b" * 30]}
    assert pool("/v1/embeddings", body)[1].reserve_tokens == estimate_prompt_tokens(body) == 20


def test_routes_are_known_to_the_gate() -> None:
    assert ROUTES["embeddings"] == ("POST", "/v1/embeddings")
    assert {route_of("/v1/embeddings"), route_of("/v1/score"), route_of("/v1/rerank")} == {
        "embeddings",
        "score",
        "rerank",
    }
    assert route_of("/v1/responses") == "responses"
    assert route_of("/v1/assistants") is None and route_of("/v1/embeddings/x") is None


# --- through the gate ----------------------------------------------------------------------------------------


class PoolingEngine:
    """Answers like vLLM: an embedding per input with usage, a score per pair, rerank results."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope, receive, send) -> None:
        body = json.loads((await receive())["body"])
        self.seen.append({"path": scope["path"], "body": body})
        inputs = body.get("input") or body.get("text_2") or body.get("documents")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        answer = {
            "object": "list",
            "data": [{"index": i, "embedding": [0.5, 0.5]} for i in range(len(inputs))],
            "usage": {"prompt_tokens": 7 * len(inputs), "total_tokens": 7 * len(inputs)},
        }
        payload = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def gate(tmp_path: Path):
    engine = PoolingEngine()
    metrics = RecordingMetrics()
    gate = Gate(
        engine,
        GateSettings(True, 10_000, dict(CAPS), audit_prompts=True),
        KeyStore((ALICE,)),
        AuditLog(tmp_path / "audit.log"),
        metrics,
    )
    return gate, engine, metrics, tmp_path / "audit.log"


def post(gate: Gate, path: str, body: dict[str, Any]) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "client": ("127.0.0.1", 1),
        "headers": [(b"authorization", f"Bearer {KEY}".encode()), (b"content-type", b"application/json")],
    }
    asyncio.run(gate(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def test_embeddings_go_through_with_audit_metrics_and_budget(gate) -> None:
    gate, engine, metrics, audit = gate
    status, headers, body = post(gate, "/v1/embeddings", {"model": "emb", "input": ["hello", "world"]})
    assert status == 200 and len(body["data"]) == 2
    assert engine.seen[0]["path"] == "/v1/embeddings" and engine.seen[0]["body"]["input"] == ["hello", "world"]
    line = audit_lines(audit)[-1]
    assert (line["endpoint"], line["model"], line["status"], line["prompt_tokens"]) == (
        "/v1/embeddings",
        "emb",
        200,
        14,
    )
    assert line["prompt"] == "hello\nworld" and line["stream"] is False
    assert metrics.done[-1]["model"] == "emb" and metrics.done[-1]["prompt_tokens"] == 14
    assert gate.budgets.snapshot("alice").tokens_today == 14  # settled with the engine's count, not the estimate
    assert b"x-ratelimit-limit-tokens" in headers


def test_refusals_are_audited_and_never_forwarded(gate) -> None:
    gate, engine, _, audit = gate
    status, _, body = post(gate, "/v1/embeddings", {"model": "gen", "input": "x"})
    assert status == 400 and body["error"]["code"] == "wrong_model_type"
    status, _, body = post(gate, "/v1/rerank", {"model": "rank", "query": "q", "documents": ["d"]})
    assert status == 403 and body["error"]["code"] == "model_not_allowed"
    assert engine.seen == []
    assert [(line["status"], line["endpoint"]) for line in audit_lines(audit)] == [
        (400, "/v1/embeddings"),
        (403, "/v1/rerank"),
    ]


def test_score_and_rerank_reach_the_engine(gate) -> None:
    gate, engine, _, _ = gate
    assert post(gate, "/v1/score", {"model": "emb", "text_1": "q", "text_2": ["a", "b"]})[0] == 200
    assert post(gate, "/v1/rerank", {"model": "emb", "query": "q", "documents": ["a"], "top_n": 1})[0] == 200
    assert [seen["path"] for seen in engine.seen] == ["/v1/score", "/v1/rerank"]


def test_readiness_probes_each_model_with_a_request_of_its_kind() -> None:
    from appliance.serve.ingress import ENDPOINTS, _probe_request

    method, request = _probe_request("emb", CAPS["emb"])
    assert method == "embeddings" and request.input == "ping" and request.model == "emb"
    method, request = _probe_request("rank", CAPS["rank"])
    assert method == "score" and (request.text_1, request.text_2) == ("ping", "ping")
    method, request = _probe_request("gen", CAPS["gen"])
    assert method == "completions" and request.max_tokens == 1
    assert {"embeddings", "score", "rerank"} <= ENDPOINTS.keys()
