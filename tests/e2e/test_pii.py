"""PII masking end to end: real Ray Serve, the PIIService (Presidio, small spaCy model) and a vLLM CPU engine.

vLLM's completions ``echo`` returns the prompt, which makes the bookend observable with a random-weights
model: ``logprobs.tokens`` are the prompt tokens *as the engine saw them* (the restorer leaves them alone),
while ``text`` is what the client gets back after restoring.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.e2e.conftest import NO_EOS, Stack

PROMPT = (
    "Hello, I am David Johnson, e-mail david.johnson@example.com, my phone number is (212) 555-1234 "
    "and my card is 4095-2609-9393-4932."
)
SECRETS = ("David Johnson", "david.johnson@example.com", "555-1234", "4095-2609-9393-4932")
PLACEHOLDERS = ("<PERSON_1>", "<EMAIL_ADDRESS_1>", "<PHONE_NUMBER_1>", "<CREDIT_CARD_1>")


def _engine_view(tokens: list[str]) -> str:
    return "".join(tokens)


def _assert_masked(engine_text: str) -> None:
    for secret in SECRETS:
        assert secret not in engine_text, (secret, engine_text)
    for placeholder in PLACEHOLDERS:
        assert placeholder in engine_text, (placeholder, engine_text)


def test_engine_sees_placeholders_and_client_gets_values(stack: Stack) -> None:
    client = stack.client(stack.keys["usera"])
    answer = client.completions.create(model="tiny-a", prompt=PROMPT, max_tokens=2, echo=True, logprobs=0)
    choice = answer.choices[0]
    engine_text = _engine_view(choice.logprobs.tokens)
    _assert_masked(engine_text)
    assert choice.text.startswith(PROMPT), choice.text
    assert answer.usage.prompt_tokens > 0


def test_streaming_restores_placeholders_split_across_chunks(stack: Stack) -> None:
    body = {"model": "tiny-a", "prompt": PROMPT, "max_tokens": 4, "echo": True, "logprobs": 0, "stream": True}
    headers = {"Authorization": f"Bearer {stack.keys['usera']}"}
    text, tokens, events = "", [], 0
    with httpx.stream("POST", stack.url + "/v1/completions", json=body, headers=headers, timeout=120) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            events += 1
            for choice in json.loads(line[6:])["choices"]:
                text += choice.get("text") or ""
                tokens += (choice.get("logprobs") or {}).get("tokens") or []
    _assert_masked(_engine_view(tokens))
    assert text.startswith(PROMPT), text
    assert events >= 2


def test_chat_masks_every_message_and_restores_the_answer_stream(stack: Stack) -> None:
    client = stack.client(stack.keys["usera"])
    messages = [{"role": "system", "content": "You help David Johnson."}, {"role": "user", "content": PROMPT}]
    # The engine's view of the templated chat prompt: vLLM's prompt_logprobs (the actual prompt tokens).
    raw = stack.post(
        "/v1/chat/completions",
        key=stack.keys["usera"],
        content=json.dumps({"model": "tiny-a", "messages": messages, "max_tokens": 1, "prompt_logprobs": 0}),
    )
    assert raw.status_code == 200, raw.text[:500]
    positions = raw.json()["prompt_logprobs"]
    engine_text = "".join(next(iter(p.values()))["decoded_token"] for p in positions if p)
    _assert_masked(engine_text)
    assert engine_text.count("<PERSON_1>") == 2, engine_text  # the system prompt's and the user's David Johnson
    chunks = list(
        client.chat.completions.create(model="tiny-a", messages=messages, max_tokens=8, stream=True, extra_body=NO_EOS)
    )
    assert chunks[-1].choices[0].finish_reason == "length"
    reply = client.chat.completions.create(model="tiny-a", messages=messages, max_tokens=4)
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage.prompt_tokens > 0


def test_analyzer_failure_is_503_and_nothing_reaches_the_engine(stack: Stack) -> None:
    """spaCy refuses a text over its max_length (1,000,000 characters): a real analyzer failure."""
    prompt = "x" * 1_000_050
    response = stack.post(
        "/v1/completions",
        key=stack.keys["usera"],
        headers={"X-Request-ID": "e2e-pii-fail"},
        content=json.dumps({"model": "tiny-a", "prompt": prompt, "max_tokens": 2}),
    )
    assert response.status_code == 503, response.text[:500]
    error = response.json()["error"]
    assert error["code"] == "pii_unavailable" and error["type"] == "service_unavailable_error"
    assert int(response.headers["retry-after"]) > 0
    line = next(json.loads(l) for l in stack.audit.read_text().splitlines() if "e2e-pii-fail" in l)  # noqa: E741
    assert line["status"] == 503 and line["error"] == "pii_unavailable"
    assert line["prompt_tokens"] is None and line["completion_tokens"] is None  # the engine never answered


def test_pii_metrics_are_exported(stack: Stack) -> None:
    wanted = (
        "ray_pii_scan_latency_seconds_bucket",
        "ray_pii_entities_detected_total",
        "ray_pii_restore_latency_seconds_bucket",
        "ray_pii_service_queue_depth",
        "ray_pii_failures_total",
        "ray_pii_cache_lookups_total",
    )
    deadline = time.monotonic() + 90
    missing: list[str] = list(wanted)
    # PROMPT went through the analyzer once, then came from the replica's cache (still masked: asserted above)
    cache_hit = re.compile(r'ray_pii_cache_lookups_total\{[^}]*result="hit"')
    while time.monotonic() < deadline and missing:
        text = httpx.get(stack.metrics_url, timeout=30).text
        missing = [name for name in wanted if name not in text] + ([] if cache_hit.search(text) else ["cache hit"])
        time.sleep(2)
    assert not missing, missing
    text = httpx.get(stack.metrics_url, timeout=30).text
    assert re.search(r'ray_pii_entities_detected_total\{[^}]*entity_type="EMAIL_ADDRESS"', text)
    audit = stack.audit.read_text()
    for secret in SECRETS:
        assert secret not in audit


@pytest.mark.security
def test_fields_outside_the_allowlist_are_refused_and_ignored_ones_dropped(stack: Stack) -> None:
    """The coverage table on the real path: a field vLLM would ignore but that is not on the allowlist is refused
    with 400 naming it; ``user``/``metadata`` (ignored by vLLM) are dropped; ``stop`` and ``documents`` masked."""
    key = stack.keys["usera"]
    base = {"model": "tiny-a", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    refused = stack.post(
        "/v1/chat/completions",
        key=key,
        content=json.dumps({**base, "functions": [{"name": "lookup", "description": PROMPT}]}),
    )
    assert refused.status_code == 400, refused.text[:500]
    error = refused.json()["error"]
    assert error["code"] == "pii_field_not_allowed" and error["param"] == "functions"
    assert all(secret not in refused.text for secret in SECRETS)
    accepted = stack.post(
        "/v1/chat/completions",
        key=key,
        content=json.dumps(
            {
                **base,
                "user": "david.johnson@example.com",
                "metadata": {"who": "David Johnson"},
                "stop": ["David Johnson"],
                "documents": [{"title": "card", "text": PROMPT}],
            }
        ),
    )
    assert accepted.status_code == 200, accepted.text[:500]
