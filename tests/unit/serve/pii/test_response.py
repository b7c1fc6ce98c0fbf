"""Restoring OpenAI responses: JSON answers and SSE streams (several choices, tool calls, flushes, UTF-8)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.serve.pii.response import SseRestorer, restore_json
from appliance.serve.pii.restore import Restorer

RESTORER = Restorer({"<PERSON_1>": "Žofie Nováková", "<EMAIL_ADDRESS_1>": "zofie@example.com"})


def sse(*payloads: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads) + b"data: [DONE]\n\n"


def chat_event(index: int, finish: str | None = None, **delta: object) -> dict:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def events(raw: bytes) -> list[dict]:
    out = []
    for block in raw.split(b"\n\n"):
        if block.startswith(b"data: ") and block != b"data: [DONE]":
            out.append(json.loads(block[6:]))
    return out


def run(raw: bytes, cuts: list[int]) -> bytes:
    restorer = SseRestorer(RESTORER)
    points = sorted({min(c, len(raw)) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    return b"".join(restorer.feed(p) for p in pieces) + restorer.finish()


def texts_by_choice(raw: bytes) -> dict[int, str]:
    out: dict[int, str] = {}
    for payload in events(raw):
        for choice in payload["choices"]:
            piece = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
            out[choice["index"]] = out.get(choice["index"], "") + piece
    return out


def test_json_answer_every_choice_and_tool_call() -> None:
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hi <PERSON_1>",
                    "tool_calls": [
                        {
                            "id": "t",
                            "type": "function",
                            "function": {"name": "send", "arguments": '{"to": "<EMAIL_ADDRESS_1>"}'},
                        }
                    ],
                },
            },
            {"index": 1, "message": {"role": "assistant", "content": "<person_1>!"}},
        ],
        "usage": {"prompt_tokens": 3},
    }
    restored = json.loads(restore_json(json.dumps(body).encode(), RESTORER))
    assert restored["choices"][0]["message"]["content"] == "Hi Žofie Nováková"
    assert restored["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"to": "zofie@example.com"}'
    assert restored["choices"][1]["message"]["content"] == "Žofie Nováková!"
    completion = json.loads(restore_json(b'{"choices": [{"index": 0, "text": "echo <PERSON_1>"}]}', RESTORER))
    assert completion["choices"][0]["text"] == "echo Žofie Nováková"


def test_json_that_is_not_an_answer_passes_unchanged() -> None:
    for body in (b"not json", b'{"error": {"message": "<PERSON_1>"}}', b"[1]"):
        assert restore_json(body, RESTORER) == body


def test_stream_placeholder_split_across_events_and_choices() -> None:
    raw = sse(
        chat_event(0, role="assistant", content=""),
        chat_event(0, content="Hello <PER"),
        chat_event(1, content="<EMAIL_"),
        chat_event(0, content="SON_1>, "),
        chat_event(1, content="ADDRESS_1> ok"),
        chat_event(0, content="bye", finish="stop"),
        chat_event(1, finish="stop"),
    )
    out = run(raw, [])
    assert texts_by_choice(out) == {0: "Hello Žofie Nováková, bye", 1: "zofie@example.com ok"}
    seen = events(out)
    assert seen[1]["choices"][0]["delta"]["content"] == "Hello "  # emitted before the placeholder is complete
    assert out.endswith(b"data: [DONE]\n\n")


def test_finish_reason_flushes_what_was_held() -> None:
    raw = sse(chat_event(0, content="call <PERSON_1"), chat_event(0, finish="length"))
    out = run(raw, [])
    assert texts_by_choice(out) == {0: "call Žofie Nováková"}
    assert events(out)[-1]["choices"][0]["finish_reason"] == "length"


def test_stream_without_finish_reason_is_flushed_before_done() -> None:
    raw = sse(chat_event(0, content="x <EMAIL_ADDRESS_1"))
    out = run(raw, [])
    assert texts_by_choice(out) == {0: "x zofie@example.com"}
    assert out.endswith(b"data: [DONE]\n\n") and out.count(b"[DONE]") == 1
    cut_short = SseRestorer(RESTORER)  # body ends with neither finish nor [DONE]
    out = cut_short.feed(b'data: {"choices":[{"index":0,"text":"<PERSON_"}]}\n\n') + cut_short.finish()
    assert texts_by_choice(out) == {0: "<PERSON_"}


def test_tool_call_arguments_streamed_per_call() -> None:
    raw = sse(
        chat_event(0, tool_calls=[{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"n": "<PER'}}]),
        chat_event(0, tool_calls=[{"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"e": "<EMAIL'}}]),
        chat_event(0, tool_calls=[{"index": 0, "function": {"arguments": 'SON_1>"}'}}]),
        chat_event(0, tool_calls=[{"index": 1, "function": {"arguments": "_ADDRESS_1"}}]),
        chat_event(0, finish="tool_calls"),
    )
    args: dict[int, str] = {}
    for payload in events(run(raw, [])):
        for call in payload["choices"][0]["delta"].get("tool_calls") or []:
            args[call["index"]] = args.get(call["index"], "") + call["function"].get("arguments", "")
    assert args == {0: '{"n": "Žofie Nováková"}', 1: '{"e": "zofie@example.com'}


def test_usage_and_non_data_events_pass_unchanged() -> None:
    usage = b'data: {"choices": [], "usage": {"prompt_tokens": 1}}\n\n'
    restorer = SseRestorer(RESTORER)
    assert restorer.feed(b": keep-alive\n\n" + usage) == b": keep-alive\n\n" + usage


COMPLETION = sse(
    *(
        {"id": "x", "object": "text_completion", "choices": [{"index": i % 2, "text": t, "finish_reason": None}]}
        for i, t in enumerate(["Ž<PER", "Ž<EMAIL_", "SON_1", "ADDRESS_1>é", ">😀", " done"])
    )
)


@settings(max_examples=300, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(COMPLETION)), max_size=12))
def test_any_byte_chunking_gives_the_same_stream(cuts: list[int]) -> None:
    """Network chunks may cut anywhere, even inside a UTF-8 character: the result never changes."""
    out = run(COMPLETION, cuts)
    assert out == run(COMPLETION, [])
    assert texts_by_choice(out) == {0: "ŽŽofie Nováková😀", 1: "Žzofie@example.comé done"}


TRICKY = Restorer({"<PERSON_1>": 'Ann "Nan" Lee', "<LOCATION_1>": "C:\\Temp\nNext line"})


def test_values_put_into_tool_call_arguments_are_json_escaped() -> None:
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hi <PERSON_1>",
                    "tool_calls": [
                        {
                            "id": "t",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"who": "<PERSON_1>", "at": "<LOCATION_1>"}'},
                        }
                    ],
                },
            }
        ]
    }
    message = json.loads(restore_json(json.dumps(body).encode(), TRICKY))["choices"][0]["message"]
    assert message["content"] == 'Hi Ann "Nan" Lee'  # plain text: the value as it is
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {
        "who": 'Ann "Nan" Lee',
        "at": "C:\\Temp\nNext line",
    }


def test_streamed_tool_call_arguments_stay_valid_json() -> None:
    raw = sse(
        chat_event(0, content="To <PERS"),
        chat_event(
            0,
            content="ON_1>",
            tool_calls=[{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"who": "<PER'}}],
        ),
        chat_event(0, tool_calls=[{"index": 0, "function": {"arguments": 'SON_1>", "at": "<LOCATION_1'}}]),
        chat_event(0, tool_calls=[{"index": 0, "function": {"arguments": '>"}'}}]),
        chat_event(0, finish="tool_calls"),
    )
    restorer = SseRestorer(TRICKY)
    out = restorer.feed(raw) + restorer.finish()
    content, arguments = "", ""
    for payload in events(out):
        delta = payload["choices"][0].get("delta") or {}
        content += delta.get("content") or ""
        for call in delta.get("tool_calls") or []:
            arguments += call["function"].get("arguments", "")
    assert content == 'To Ann "Nan" Lee'
    assert json.loads(arguments) == {"who": 'Ann "Nan" Lee', "at": "C:\\Temp\nNext line"}


def test_stop_reason_is_restored() -> None:
    """``stop`` strings are masked, so vLLM's ``stop_reason`` names a placeholder: the client gets its value."""
    answer = {"choices": [{"index": 0, "text": "Hi ", "finish_reason": "stop", "stop_reason": "<PERSON_1>"}]}
    restored = json.loads(restore_json(json.dumps(answer).encode(), RESTORER))
    assert restored["choices"][0]["stop_reason"] == "Žofie Nováková"
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "<PERSON_1>"}]}
    out = events(run(sse(chat_event(0, content="Hi"), end), []))
    assert out[-1]["choices"][0]["stop_reason"] == "Žofie Nováková"
    numeric = {"choices": [{"index": 0, "text": "x", "finish_reason": "stop", "stop_reason": 2}]}
    assert restore_json(json.dumps(numeric).encode(), RESTORER) == json.dumps(numeric).encode()
