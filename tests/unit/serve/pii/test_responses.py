"""PII on the Responses API, with real Presidio through the gate: instructions, input items, tool schemas and
function-call arguments reach the engine masked; hosted tools and media are refused; every field of vLLM's
``ResponsesRequest`` is classified; the answer (JSON, or events with placeholders split across deltas) comes
back with the user's values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, Role
from appliance.serve.audit import AuditLog
from appliance.serve.checks import RequestLimits
from appliance.serve.gate import Gate, GateSettings
from appliance.serve.keystore import KeyStore
from appliance.serve.pii.bookend import Bookend, BookendSettings
from appliance.serve.pii.response import SseRestorer, restore_json
from appliance.serve.pii.responses import RESPONSES_FIELDS
from appliance.serve.pii.restore import Restorer
from tests.unit.serve.pii.test_bookend import KEY, PROMPT, RecordingPiiMetrics, assert_no_secrets, post
from tests.unit.serve.test_gate import RecordingMetrics, audit_lines

pytestmark = pytest.mark.security

CAPS = {"gen": RequestLimits(max_tokens=16)}
RESTORER = Restorer({"<PERSON_1>": "Žofie Nováková", "<EMAIL_ADDRESS_1>": "zofie@example.com"})


def event(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def text_events(text: str, pieces: list[str], family: str = "response.output_text", name: str = "text") -> list[dict]:
    base = {"item_id": "m", "output_index": 0, "content_index": 0}
    deltas = [{"type": f"{family}.delta", **base, "delta": p, "sequence_number": i} for i, p in enumerate(pieces)]
    return [*deltas, {"type": f"{family}.done", **base, name: text, "sequence_number": len(pieces)}]


def parse(raw: bytes) -> list[dict]:
    out = []
    for block in raw.split(b"\n\n"):
        if block.strip():
            head, _, data = block.partition(b"\n")
            payload = json.loads(data[5:])
            assert head == b"event: " + payload["type"].encode()
            out.append(payload)
    return out


class ResponsesEcho:
    """Records the body; answers a response object whose text repeats the input (as a model might)."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        raw = (await receive())["body"]
        self.seen.append(raw)
        body = json.loads(raw)
        said = body["input"] if isinstance(body["input"], str) else body["input"][-1]["content"]
        answer = {
            "id": "resp_1",
            "object": "response",
            "output": [
                {"type": "message", "content": [{"type": "output_text", "text": f"You said: {said}"}]},
                {"type": "function_call", "name": "send", "call_id": "c", "arguments": json.dumps({"to": said})},
            ],
            "usage": {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13},
        }
        payload = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


def make_gate(tmp_path: Path, call) -> tuple[Gate, ResponsesEcho]:
    engine = ResponsesEcho()
    bookend = Bookend(BookendSettings(30.0), call, RecordingPiiMetrics())
    keys = KeyStore((ApiKeyRecord("alice", Role.USER, ("gen",), hash_key(KEY)),))
    gate = Gate(
        engine,
        GateSettings(True, 100_000, dict(CAPS), True),
        keys,
        AuditLog(tmp_path / "audit.log"),
        RecordingMetrics(),
        bookend,
    )
    return gate, engine


def test_every_text_reaches_the_engine_masked_and_comes_back(tmp_path: Path, pii_service) -> None:
    gate, engine = make_gate(tmp_path, pii_service.mask)
    tool = {
        "type": "function",
        "name": "send",
        "description": "Mail David Johnson.",
        "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
    }
    items = [
        {"type": "function_call", "call_id": "c0", "name": "send", "arguments": json.dumps({"to": PROMPT})},
        {"type": "function_call_output", "call_id": "c0", "output": f"sent to {PROMPT}"},
        {"role": "user", "content": PROMPT},
    ]
    status, _, body = post(
        gate,
        "/v1/responses",
        {
            "model": "gen",
            "instructions": f"Help {PROMPT}",
            "input": items,
            "tools": [tool],
            "user": "david.johnson@example.com",
        },
    )
    assert status == 200, body
    assert_no_secrets(engine.seen[0])
    sent = json.loads(engine.seen[0])
    assert "<PERSON_1>" in sent["instructions"] and "user" not in sent
    answer = json.loads(body)
    assert answer["output"][0]["content"][0]["text"] == f"You said: {PROMPT}"
    assert json.loads(answer["output"][1]["arguments"]) == {"to": PROMPT}  # valid JSON with the values back
    line = audit_lines(tmp_path / "audit.log")[-1]
    assert_no_secrets(json.dumps(line))
    assert line["prompt_tokens"] == 9 and "<PERSON_1>" in line["prompt"]


def test_hosted_tools_media_and_stored_responses_are_refused(tmp_path: Path, pii_service) -> None:
    gate, engine = make_gate(tmp_path, pii_service.mask)
    for extra in (
        {"tools": [{"type": "web_search"}]},
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}]},
        {"prompt": {"id": "pmpt_1"}},
    ):
        status, _, body = post(gate, "/v1/responses", {"model": "gen", "input": "hi", **extra})
        assert status == 400, body
    assert engine.seen == []


def test_every_field_of_vllms_request_is_classified() -> None:
    from vllm.entrypoints.openai.responses.protocol import ResponsesRequest

    assert set(ResponsesRequest.model_fields) - set(RESPONSES_FIELDS) == set()


def test_restore_json_response_object() -> None:
    answer = {
        "object": "response",
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "<PERSON_1> asks"}]},
            {"type": "message", "content": [{"type": "output_text", "text": "Hi <person_1>"}]},
            {"type": "function_call", "arguments": '{"to": "<EMAIL_ADDRESS_1>"}'},
        ],
    }
    restored = json.loads(restore_json(json.dumps(answer).encode(), RESTORER))
    assert restored["output"][0]["summary"][0]["text"] == "Žofie Nováková asks"
    assert restored["output"][1]["content"][0]["text"] == "Hi Žofie Nováková"
    assert restored["output"][2]["arguments"] == '{"to": "zofie@example.com"}'


def test_stream_placeholder_split_across_deltas_and_flushed_before_done() -> None:
    stream = text_events("Hi <PERSON_1>", ["Hi <PER", "SON_1>"]) + [
        {
            "type": "response.completed",
            "response": {
                "object": "response",
                "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hi <PERSON_1>"}]}],
            },
        }
    ]
    restorer = SseRestorer(RESTORER)
    out = parse(b"".join(restorer.feed(event(e)) for e in stream) + restorer.finish())
    deltas = "".join(e["delta"] for e in out if e["type"] == "response.output_text.delta")
    assert deltas == "Hi Žofie Nováková"
    done = next(e for e in out if e["type"] == "response.output_text.done")
    assert done["text"] == "Hi Žofie Nováková"
    assert out[-1]["response"]["output"][0]["content"][0]["text"] == "Hi Žofie Nováková"
    held = text_events("<PERSON_1", ["<PERSON_1"])  # the text ends while a placeholder could still be forming
    restorer = SseRestorer(RESTORER)
    out = parse(b"".join(restorer.feed(event(e)) for e in held) + restorer.finish())
    assert [e["type"] for e in out] == [
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
    ]
    assert "".join(e["delta"] for e in out[:2]) == "Žofie Nováková" and out[1]["logprobs"] == []


def test_streamed_arguments_are_json_escaped() -> None:
    restorer = Restorer({"<PERSON_1>": 'Ann "Nan" O\'Brien'})
    stream = text_events(
        '{"to": "<PERSON_1>"}', ['{"to": "<PERS', 'ON_1>"}'], "response.function_call_arguments", "arguments"
    )
    sse = SseRestorer(restorer)
    out = parse(b"".join(sse.feed(event(e)) for e in stream) + sse.finish())
    streamed = "".join(e["delta"] for e in out if e["type"].endswith(".delta"))
    assert json.loads(streamed) == {"to": 'Ann "Nan" O\'Brien'} == json.loads(out[-1]["arguments"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_any_byte_chunking_gives_the_same_text(cuts: list[int]) -> None:
    raw = b"".join(
        event(e) for e in text_events("A <PERSON_1> B <EMAIL_ADDRESS_1>", ["A <PE", "RSON_1> B <EMAIL_", "ADDRESS_1>"])
    )
    restorer = SseRestorer(RESTORER)
    points = sorted({min(c, len(raw)) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    out = parse(b"".join(restorer.feed(p) for p in pieces) + restorer.finish())
    assert "".join(e["delta"] for e in out if e["type"].endswith(".delta")) == "A Žofie Nováková B zofie@example.com"
