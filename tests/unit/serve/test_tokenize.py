"""vLLM's /tokenize and /detokenize at the gate: keys and allowlists, any kind of model, the body's shape,
nothing reserved of a token budget, audit lines, and the PII coverage tables against vLLM's request models."""

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
from appliance.serve.gate import ROUTES, Gate, GateSettings, route_of
from appliance.serve.keystore import KeyStore
from appliance.serve.tokenize import DETOKENIZE_FIELDS, TOKENIZE_FIELDS, check_tokenize
from tests.unit.serve.pii.test_bookend import KEY
from tests.unit.serve.pii.test_bookend import post as post_to
from tests.unit.serve.test_gate import RecordingMetrics, audit_lines

CAPS = {
    "gen": RequestLimits(max_tokens=16, max_prompts=2),
    "emb": RequestLimits(16, task="embed"),
    "other": RequestLimits(16),
}
ALICE = ApiKeyRecord("alice", Role.USER, ("gen", "emb"), hash_key(KEY), KeyLimits(tpm=1000))


def refused(path: str, body: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        check_tokenize(json.dumps(body).encode(), Principal.from_record(ALICE), CAPS, path)
    return caught.value


def test_routes_are_vllms_exact_paths() -> None:
    assert ROUTES["tokenize"] == ("POST", "/tokenize") and ROUTES["detokenize"] == ("POST", "/detokenize")
    assert route_of("/tokenize") == "tokenize" and route_of("/tokenize/x") is None and route_of("/v1/tokenize") is None


def test_bodies_are_checked() -> None:
    for model in ("gen", "emb"):  # any kind of model has a tokenizer
        raw, facts = check_tokenize(
            json.dumps({"model": model, "prompt": "hi"}).encode(),
            Principal.from_record(ALICE),
            CAPS,
            "/tokenize",
            log_prompt=True,
        )
        assert facts.model == model and facts.reserve_tokens == 0 and facts.prompt == "hi" and not facts.stream
    assert refused("/tokenize", {"model": "other", "prompt": "hi"}).status == 403
    assert refused("/tokenize", {"model": "nope", "prompt": "hi"}).status == 404
    assert refused("/tokenize", {"model": "gen"}).param == "prompt"
    assert refused("/tokenize", {"model": "gen", "prompt": [1, 2]}).param == "prompt"
    assert refused("/tokenize", {"model": "gen", "prompt": ["a", "b", "c"]}).code == "too_many_items"
    assert (
        refused("/tokenize", {"model": "gen", "prompt": "a", "return_token_strs": "yes"}).param == "return_token_strs"
    )
    check_tokenize(b'{"model": "gen", "tokens": [1, 2, 0]}', Principal.from_record(ALICE), CAPS, "/detokenize")
    for tokens in ([1, -1], [1.5], "12", None, [True]):
        assert refused("/detokenize", {"model": "gen", "tokens": tokens}).param == "tokens", tokens


class TokenizerEngine:
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        self.seen.append((await receive())["body"])
        payload = json.dumps({"count": 2, "max_model_len": 64, "tokens": [5, 6], "token_strs": None}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def test_through_the_gate_audited_and_not_charged(tmp_path: Path) -> None:
    engine = TokenizerEngine()
    gate = Gate(
        engine,
        GateSettings(True, 10_000, dict(CAPS), audit_prompts=True),
        KeyStore((ALICE,)),
        AuditLog(tmp_path / "audit.log"),
        RecordingMetrics(),
    )
    status, _, body = post_to(gate, "/tokenize", {"model": "gen", "prompt": "hello"})
    assert status == 200 and json.loads(body)["tokens"] == [5, 6]
    status, _, body = post_to(gate, "/detokenize", {"model": "other", "tokens": [5]})
    assert status == 403 and json.loads(body)["error"]["code"] == "model_not_allowed"
    assert len(engine.seen) == 1
    lines = audit_lines(tmp_path / "audit.log")
    assert [(line["endpoint"], line["status"], line["model"]) for line in lines] == [
        ("/tokenize", 200, "gen"),
        ("/detokenize", 403, "other"),
    ]
    assert lines[0]["prompt"] == "hello" and gate.budgets.snapshot("alice").tokens_today == 0


def test_pii_tables_cover_vllms_request_models() -> None:
    from ray.llm._internal.serve.core.ingress.ingress import DetokenizeRequest, TokenizeCompletionRequest

    assert set(TOKENIZE_FIELDS) == set(TokenizeCompletionRequest.model_fields)
    assert set(DETOKENIZE_FIELDS) == set(DetokenizeRequest.model_fields)


def test_the_engine_adopts_vllms_tokenizer_service_under_its_new_name() -> None:
    """ray.serve.llm reads ``openai_serving_tokenization`` from vLLM's app state; vLLM now names it
    ``serving_tokenization``. Unadopted, every /tokenize answered 400 "does not support the 'tokenization' task"."""
    from types import SimpleNamespace

    from appliance.serve.engine import adopt_tokenization

    service = object()
    engine = SimpleNamespace(_oai_serving_tokenization=None, _app_state=SimpleNamespace(serving_tokenization=service))
    adopt_tokenization(engine)
    assert engine._oai_serving_tokenization is service

    own = object()  # what ray.serve.llm found itself is kept
    engine = SimpleNamespace(_oai_serving_tokenization=own, _app_state=SimpleNamespace(serving_tokenization=service))
    adopt_tokenization(engine)
    assert engine._oai_serving_tokenization is own

    bare = SimpleNamespace(_oai_serving_tokenization=None, _app_state=None)  # an engine that did not start
    adopt_tokenization(bare)
    assert bare._oai_serving_tokenization is None


def test_vllms_app_state_still_sets_a_name_the_engine_reads() -> None:
    """The pinned vLLM's ``init_app_state`` (what ray.serve.llm calls) assigns one of the two names read above:
    a rename in a vLLM upgrade fails here, not as a 400 on a user's /tokenize."""
    import inspect

    from vllm.entrypoints.openai.api_server import init_app_state  # as ray.serve.llm's engine imports it

    source = inspect.getsource(inspect.getmodule(init_app_state))
    assert "state.serving_tokenization =" in source or "state.openai_serving_tokenization =" in source
