"""The Responses API end to end with the official OpenAI client: vLLM's own implementation in the engine's
deployment, through every gateway layer (keys, caps, audit, PII: on for the whole session), streamed and not,
served stateless."""

from __future__ import annotations

import json

import openai
import pytest

from tests.e2e.conftest import Stack

PERSON = {
    "type": "object",
    "properties": {"who": {"type": "string", "enum": ["David Johnson"]}},
    "required": ["who"],
    "additionalProperties": False,
}
FORMAT = {"format": {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}}


def _audit(stack: Stack, request_id: str) -> dict:
    return next(json.loads(line) for line in stack.audit.read_text().splitlines() if request_id in line)


def test_a_response_with_usage_capped_and_audited(stack: Stack) -> None:
    client = stack.client(stack.keys["usera"])
    answer = client.responses.create(
        model="tiny-a", input="Say hello.", max_output_tokens=500, extra_headers={"X-Request-ID": "e2e-responses-1"}
    )
    assert answer.object == "response" and answer.status in ("completed", "incomplete")
    assert answer.usage.output_tokens <= 48  # the model's max_tokens_cap, not the 500 asked for
    assert isinstance(answer.output_text, str)
    line = _audit(stack, "e2e-responses-1")
    assert (line["endpoint"], line["status"], line["model"]) == ("/v1/responses", 200, "tiny-a")
    assert (
        line["prompt_tokens"] == answer.usage.input_tokens and line["completion_tokens"] == answer.usage.output_tokens
    )


def test_a_streamed_response_in_the_responses_event_format(stack: Stack) -> None:
    client = stack.client(stack.keys["usera"])
    kinds, text, final = [], "", None
    with client.responses.stream(
        model="tiny-a", input="Count to three.", max_output_tokens=12, extra_headers={"X-Request-ID": "e2e-responses-2"}
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    assert "response.output_text.delta" in kinds
    assert final.output_text == text
    line = _audit(stack, "e2e-responses-2")
    assert (
        line["stream"] is True
        and line["ttft_ms"] is not None
        and line["completion_tokens"] == final.usage.output_tokens
    )


def test_pii_is_masked_for_the_engine_and_restored_for_the_client(stack: Stack) -> None:
    """The schema's enum value is a name: the engine is given a placeholder and can only write it (its own tokens,
    in the logprobs, show that); the client gets valid JSON with the name back, streamed and not."""
    client = stack.client(stack.keys["usera"])
    answer = client.responses.create(
        model="tiny-a",
        input="Who is David Johnson?",
        text=FORMAT,
        include=["message.output_text.logprobs"],
        top_logprobs=0,
    )
    part = answer.output[-1].content[0]
    assert json.loads(part.text) == {"who": "David Johnson"}, part.text
    engine_view = "".join(t.token for t in part.logprobs or [])
    assert "<PERSON_1>" in engine_view and "David" not in engine_view, engine_view
    with client.responses.stream(model="tiny-a", input="Who is David Johnson?", text=FORMAT) as stream:
        streamed = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert json.loads(streamed) == {"who": "David Johnson"}, streamed


def test_keys_and_statelessness_are_enforced(stack: Stack) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        stack.client(stack.keys["userb"]).responses.create(model="tiny-a", input="hi")
    with pytest.raises(openai.BadRequestError) as caught:
        stack.client(stack.keys["embedder"]).responses.create(model="tiny-embed", input="hi")
    assert caught.value.code == "wrong_model_type"
    with pytest.raises(openai.BadRequestError) as caught:
        stack.client(stack.keys["usera"]).responses.create(model="tiny-a", input="hi", previous_response_id="resp_1")
    assert caught.value.code == "responses_not_stored"
