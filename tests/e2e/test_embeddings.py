"""Embeddings, score and rerank end to end: the tiny Llama served by vLLM's pooling runner behind the gateway
(keys, limits, audit, PII on for the session), called with the official OpenAI client where it has the call."""

from __future__ import annotations

import base64
import json
import math

import httpx
import numpy as np
import openai
import pytest

from tests.e2e.conftest import EMBED_MAX_INPUTS, EMBED_MODEL, Stack

HIDDEN = 128  # the tiny model's hidden size: the embedding length
PII_TEXT = "Please call David Johnson tomorrow."
MASKED_TEXT = "Please call <PERSON_1> tomorrow."  # what the engine is given instead (PII is on in the session)


def _post(stack: Stack, path: str, body: dict, key: str) -> tuple[int, dict]:
    response = stack.post(path, key=key, content=json.dumps(body))
    return response.status_code, response.json()


def _float_embeddings(stack: Stack, texts: list[str], key: str) -> list[list[float]]:
    status, body = _post(
        stack, "/v1/embeddings", {"model": EMBED_MODEL, "input": texts, "encoding_format": "float"}, key
    )
    assert status == 200, body
    return [item["embedding"] for item in sorted(body["data"], key=lambda d: d["index"])]


def test_embeddings_with_the_openai_client(stack: Stack) -> None:
    client = stack.client(stack.keys["embedder"])
    result = client.embeddings.create(model=EMBED_MODEL, input=["hello world", "the cat sat"])
    assert [item.index for item in result.data] == [0, 1]
    vectors = [item.embedding for item in result.data]
    assert all(len(v) == HIDDEN and all(math.isfinite(x) for x in v) for v in vectors)
    assert vectors[0] != vectors[1]
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-3)  # normalised (vLLM's default)
    assert result.usage.prompt_tokens > 0 and result.model == EMBED_MODEL
    single = client.embeddings.create(model=EMBED_MODEL, input="hello world", encoding_format="float")
    assert np.allclose(single.data[0].embedding, vectors[0], atol=1e-5)


def test_float_and_base64_encodings_agree(stack: Stack) -> None:
    key = stack.keys["embedder"]
    floats = _float_embeddings(stack, ["encode me"], key)[0]
    status, body = _post(
        stack, "/v1/embeddings", {"model": EMBED_MODEL, "input": ["encode me"], "encoding_format": "base64"}, key
    )
    assert status == 200, body
    decoded = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype=np.float32)
    assert decoded.shape == (HIDDEN,) and np.allclose(decoded, floats, atol=1e-5)


def test_dimensions_shorten_a_matryoshka_embedding(stack: Stack) -> None:
    client = stack.client(stack.keys["embedder"])
    short = client.embeddings.create(model=EMBED_MODEL, input="hello world", dimensions=32, encoding_format="float")
    assert len(short.data[0].embedding) == 32
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=EMBED_MODEL, input="hello", dimensions=0)
    assert caught.value.body["param"] == "dimensions"


def test_input_lists_are_capped(stack: Stack) -> None:
    client = stack.client(stack.keys["embedder"])
    assert len(client.embeddings.create(model=EMBED_MODEL, input=["x"] * EMBED_MAX_INPUTS).data) == EMBED_MAX_INPUTS
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=EMBED_MODEL, input=["x"] * (EMBED_MAX_INPUTS + 1))
    assert caught.value.body["code"] == "parameter_above_limit" and caught.value.body["param"] == "input"


def test_the_wrong_kind_of_model_is_a_clear_400(stack: Stack) -> None:
    admin = stack.client(stack.keys["admin"])
    with pytest.raises(openai.BadRequestError) as caught:
        admin.embeddings.create(model="tiny-a", input="hello")
    assert caught.value.body["code"] == "wrong_model_type" and EMBED_MODEL in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        admin.chat.completions.create(model=EMBED_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "wrong_model_type"
    models = {m.id: m for m in admin.models.list()}
    assert models[EMBED_MODEL].metadata["task"] == "embed"
    assert "/v1/embeddings" in models[EMBED_MODEL].metadata["endpoints"]
    assert models["tiny-a"].metadata["task"] == "generate"


def test_keys_without_the_model_get_403_on_every_pooling_route(stack: Stack) -> None:
    key = stack.keys["usera"]
    for path, body in (
        ("/v1/embeddings", {"input": "x"}),
        ("/v1/score", {"text_1": "a", "text_2": "b"}),
        ("/v1/rerank", {"query": "a", "documents": ["b"]}),
    ):
        status, answer = _post(stack, path, {"model": EMBED_MODEL, **body}, key)
        assert status == 403 and answer["error"]["code"] == "model_not_allowed", (path, answer)
    assert EMBED_MODEL not in [m.id for m in stack.client(key).models.list()]


def test_score_and_rerank(stack: Stack) -> None:
    key = stack.keys["embedder"]
    status, score = _post(
        stack, "/v1/score", {"model": EMBED_MODEL, "text_1": "the cat", "text_2": ["the cat", "a stone"]}, key
    )
    assert status == 200, score
    scores = [item["score"] for item in sorted(score["data"], key=lambda d: d["index"])]
    assert len(scores) == 2 and math.isclose(scores[0], 1.0, rel_tol=1e-3)  # cosine of a text with itself
    assert score["usage"]["prompt_tokens"] > 0

    documents = ["a stone", "the cat", "blue sky"]
    # the OpenAI client has no rerank call: docs/guides/api.md posts through it, as here
    rerank = (
        stack.client(key)
        .post(
            "/rerank",
            cast_to=httpx.Response,
            body={"model": EMBED_MODEL, "query": "the cat", "documents": documents, "top_n": 2},
        )
        .json()
    )
    results = rerank["results"]
    assert len(results) == 2 and results[0]["index"] == 1 and results[0]["document"]["text"] == "the cat"
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    assert rerank["usage"]["total_tokens"] > 0
    status, over = _post(
        stack, "/v1/rerank", {"model": EMBED_MODEL, "query": "q", "documents": ["d"] * (EMBED_MAX_INPUTS + 1)}, key
    )
    assert status == 400 and over["error"]["param"] == "documents"


def test_pii_is_masked_before_the_engine_embeds(stack: Stack) -> None:
    """With PII on, the engine embeds the masked text: the vector of a text with a name equals the vector of
    the same text with the placeholder the bookend puts there (which the engine would never produce from the
    name itself)."""
    key = stack.keys["embedder"]
    alone = _float_embeddings(stack, [PII_TEXT], key)[0]
    assert np.allclose(alone, _float_embeddings(stack, [MASKED_TEXT], key)[0], atol=1e-5)
    # in one request the user's own "<PERSON_1>" is kept apart: the name becomes <PERSON_2> there
    with_name, masked = _float_embeddings(stack, [PII_TEXT, MASKED_TEXT], key)
    assert not np.allclose(with_name, masked, atol=1e-5)
    assert np.allclose(with_name, _float_embeddings(stack, ["Please call <PERSON_2> tomorrow."], key)[0], atol=1e-5)


def test_every_pooling_route_is_audited(stack: Stack) -> None:
    key = stack.keys["embedder"]
    assert _post(stack, "/v1/embeddings", {"model": EMBED_MODEL, "input": "audit me"}, key)[0] == 200
    assert _post(stack, "/v1/score", {"model": EMBED_MODEL, "text_1": "a", "text_2": "b"}, key)[0] == 200
    assert _post(stack, "/v1/rerank", {"model": EMBED_MODEL, "query": "a", "documents": ["b"]}, key)[0] == 200
    assert _post(stack, "/v1/embeddings", {"model": EMBED_MODEL, "input": ["x"] * 99}, key)[0] == 400
    lines = [json.loads(line) for line in stack.audit.read_text().splitlines()]
    mine = [line for line in lines if line.get("key") == "embedder"][-4:]
    assert [(line["endpoint"], line["status"]) for line in mine] == [
        ("/v1/embeddings", 200),
        ("/v1/score", 200),
        ("/v1/rerank", 200),
        ("/v1/embeddings", 400),
    ]
    assert all(line["model"] == EMBED_MODEL for line in mine)
    assert all(line["prompt_tokens"] > 0 for line in mine[:3])


def test_readiness_probes_the_embedding_model(stack: Stack) -> None:
    ready = stack.get("/health/ready", stack.keys["admin"])
    assert ready.status_code == 200, ready.text
    assert ready.json()["models"][EMBED_MODEL]["ready"] is True
