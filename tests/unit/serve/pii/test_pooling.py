"""PII on the pooling routes (embeddings, score, rerank), with real Presidio through the gate: inputs reach the
engine masked (PII_EMBEDDINGS=mask) or the request is refused before it (refuse); every field of vLLM's request
models is classified; a rerank answer gets the user's documents back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, Role
from appliance.serve.audit import AuditLog
from appliance.serve.checks import RequestLimits
from appliance.serve.gate import Gate, GateSettings
from appliance.serve.keystore import KeyStore
from appliance.serve.pii.bookend import Bookend, BookendSettings
from appliance.serve.pii.pooling import REFUSED_CODE, pooling_fields
from appliance.serve.pii.response import restore_json
from appliance.serve.pii.restore import Restorer
from tests.unit.serve.pii.test_bookend import KEY, PROMPT, RecordingPiiMetrics, assert_no_secrets, post
from tests.unit.serve.test_gate import RecordingMetrics, audit_lines

pytestmark = pytest.mark.security

CAPS = {"emb": RequestLimits(max_tokens=16, task="embed")}


class PoolingEcho:
    """Embeds nothing: records the body and answers like vLLM (rerank: the documents it was given)."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        raw = (await receive())["body"]
        self.seen.append(raw)
        body = json.loads(raw)
        usage = {"prompt_tokens": 9, "total_tokens": 9}
        if scope["path"] == "/v1/rerank":
            answer: dict[str, Any] = {
                "results": [
                    {"index": i, "document": {"text": d}, "relevance_score": 0.5}
                    for i, d in enumerate(body["documents"])
                ],
                "usage": usage,
            }
        else:
            answer = {"object": "list", "data": [{"index": 0, "embedding": [0.1, 0.2]}], "usage": usage}
        payload = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


def make_gate(tmp_path: Path, call, mode: str) -> tuple[Gate, PoolingEcho, Path]:
    engine = PoolingEcho()
    bookend = Bookend(BookendSettings(30.0), call, RecordingPiiMetrics())
    keys = KeyStore((ApiKeyRecord("alice", Role.USER, ("emb",), hash_key(KEY)),))
    gate = Gate(
        engine,
        GateSettings(True, 100_000, dict(CAPS), True, mode),
        keys,
        AuditLog(tmp_path / "audit.log"),
        RecordingMetrics(),
        bookend,
    )
    return gate, engine, tmp_path / "audit.log"


def test_embedding_inputs_reach_the_engine_masked(tmp_path: Path, pii_service) -> None:
    gate, engine, audit = make_gate(tmp_path, pii_service.mask, "mask")
    status, _, body = post(gate, "/v1/embeddings", {"model": "emb", "input": [PROMPT, "plain text"]})
    assert status == 200, body
    assert_no_secrets(engine.seen[0])
    sent = json.loads(engine.seen[0])["input"]
    assert "<PERSON_1>" in sent[0] and sent[1] == "plain text"
    line = audit_lines(audit)[-1]
    assert_no_secrets(json.dumps(line))
    assert "<PERSON_1>" in line["prompt"] and line["prompt_tokens"] == 9


def test_rerank_documents_are_masked_and_restored(tmp_path: Path, pii_service) -> None:
    gate, engine, _ = make_gate(tmp_path, pii_service.mask, "mask")
    status, _, body = post(
        gate, "/v1/rerank", {"model": "emb", "query": "Who is David Johnson?", "documents": [PROMPT, "nothing here"]}
    )
    assert status == 200, body
    assert_no_secrets(engine.seen[0])
    assert json.loads(body)["results"][0]["document"]["text"] == PROMPT  # the user's own text back
    status, _, _ = post(gate, "/v1/score", {"model": "emb", "text_1": PROMPT, "text_2": ["x", PROMPT]})
    assert status == 200 and len(engine.seen) == 2
    assert_no_secrets(engine.seen[1])


def test_refuse_mode_refuses_inputs_with_personal_data(tmp_path: Path, pii_service) -> None:
    gate, engine, audit = make_gate(tmp_path, pii_service.mask, "refuse")
    status, _, body = post(gate, "/v1/embeddings", {"model": "emb", "input": ["plain text", PROMPT]})
    error = json.loads(body)["error"]
    assert (status, error["code"], error["param"]) == (400, REFUSED_CODE, "input[1]")
    assert "PII_EMBEDDINGS=refuse" in error["message"]
    assert_no_secrets(body)
    assert engine.seen == []
    assert audit_lines(audit)[-1]["status"] == 400
    status, _, body = post(gate, "/v1/embeddings", {"model": "emb", "input": ["plain text about the weather"]})
    assert status == 200, body
    assert json.loads(engine.seen[0])["input"] == ["plain text about the weather"]  # unchanged


def test_token_id_inputs_cannot_be_checked(tmp_path: Path, pii_service) -> None:
    gate, engine, _ = make_gate(tmp_path, pii_service.mask, "mask")
    status, _, body = post(gate, "/v1/embeddings", {"model": "emb", "input": [1, 2, 3]})
    assert status == 400 and json.loads(body)["error"]["code"] == "pii_unmaskable_prompt"
    status, _, body = post(gate, "/v1/rerank", {"model": "emb", "query": "q", "documents": [{"image": "x"}]})
    assert status == 400 and json.loads(body)["error"]["code"] == "pii_field_not_allowed"
    assert engine.seen == []


@pytest.mark.parametrize(
    ("path", "models"),
    [
        ("/v1/embeddings", ("EmbeddingCompletionRequest", "EmbeddingChatRequest")),
        ("/v1/score", ("ScoreTextRequest",)),
        ("/v1/rerank", ("RerankRequest",)),
    ],
)
def test_every_field_of_vllms_request_models_is_classified(path: str, models: tuple[str, ...]) -> None:
    from vllm.entrypoints.pooling.embed import protocol as embed
    from vllm.entrypoints.pooling.scoring import protocol as scoring

    for refuse in (False, True):
        table = pooling_fields(path, refuse=refuse)
        for name in models:
            model = getattr(embed, name, None) or getattr(scoring, name)
            missing = set(model.model_fields) - set(table)
            assert not missing, f"{name} fields not classified for {path}: {sorted(missing)}"


def test_restore_json_leaves_embeddings_alone() -> None:
    body = json.dumps({"data": [{"embedding": "AAAA"}], "usage": {"prompt_tokens": 1}}).encode()
    assert restore_json(body, Restorer({"<PERSON_1>": "David"})) == body
