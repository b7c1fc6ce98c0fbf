"""vLLM's /tokenize and /detokenize through the gateway on the tiny models (PII masking on for the session):
keys and allowlists, any kind of model, audit lines, and detokenize refused while masking is on."""

from __future__ import annotations

import json

from tests.e2e.conftest import Stack


def test_tokenize_through_the_gate(stack: Stack) -> None:
    body = json.dumps({"model": "tiny-a", "prompt": "hello world", "return_token_strs": True})
    answer = stack.post("/tokenize", key=stack.keys["usera"], content=body, headers={"X-Request-ID": "e2e-tokenize-1"})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["count"] == len(data["tokens"]) > 0 and all(isinstance(t, int) for t in data["tokens"])
    assert len(data["token_strs"]) == data["count"] and data["max_model_len"] > 0
    line = next(json.loads(x) for x in stack.audit.read_text().splitlines() if "e2e-tokenize-1" in x)
    assert (line["endpoint"], line["status"], line["model"]) == ("/tokenize", 200, "tiny-a")
    embed = stack.post(
        "/tokenize", key=stack.keys["embedder"], content=json.dumps({"model": "tiny-embed", "prompt": "x"})
    )
    assert embed.status_code == 200, embed.text  # an embedding model has a tokenizer too
    refused = stack.post("/tokenize", key=stack.keys["userb"], content=json.dumps({"model": "tiny-a", "prompt": "x"}))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    assert stack.post("/tokenize", content=body).status_code == 401


def test_detokenize_is_refused_while_pii_masking_is_on(stack: Stack) -> None:
    answer = stack.post(
        "/detokenize", key=stack.keys["usera"], content=json.dumps({"model": "tiny-a", "tokens": [1, 2]})
    )
    assert answer.status_code == 400 and "PII masking is on" in answer.json()["error"]["message"]
