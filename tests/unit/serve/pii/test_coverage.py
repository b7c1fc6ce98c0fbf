"""PII coverage sweep: personal data in any field of a chat / completions request either reaches the engine
masked, or the request is refused with 400 naming the field.

The requests are generated from vLLM's own request models (``ChatCompletionRequest``, ``CompletionRequest``
and every type they nest: messages, content parts, tools, response formats...): for each place a value can
go, one request carries a PII string there (and a PII key in every free-form object). The masker is a stub
that replaces the known sample values with placeholders and records what it was asked; the "engine" is what
:meth:`Bookend.mask` would forward. A field a new vLLM adds is swept automatically, and the completeness test
fails until it is classified in ``appliance.serve.pii.coverage``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import jsonschema
import pytest
import typing_extensions

from appliance.serve.errors import ApiError
from appliance.serve.pii.bookend import Bookend, BookendSettings, Masked
from appliance.serve.pii.coverage import DROPPED, FIELDS, MASKED
from appliance.serve.pii.metrics import NoMetrics
from appliance.serve.pii.walker import NOT_ALLOWED_CODE, UNMASKABLE_CODE

pytestmark = pytest.mark.security

NAME, EMAIL, PHONE = "David Johnson", "david.johnson@example.com", "(212) 555-1234"
SECRETS = (NAME, EMAIL, PHONE)
PII = f"Write to {NAME} at {EMAIL} or call {PHONE}."
REPLACEMENTS = ((NAME, "<PERSON_1>"), (EMAIL, "<EMAIL_ADDRESS_1>"), (PHONE, "<PHONE_NUMBER_1>"))
REFUSAL_CODES = {NOT_ALLOWED_CODE, UNMASKABLE_CODE, "pii_unmaskable_prompt", "invalid_type"}
BASE = {"model": "a", "messages": [{"role": "user", "content": "hello"}]}


class StubMasker:
    """A MaskCall that masks exactly the sample values and records every text it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, texts: list[str]) -> dict[str, Any]:
        self.asked.extend(texts)
        out, originals = [], {}
        for text in texts:
            for secret, token in REPLACEMENTS:
                if secret in text:
                    text = text.replace(secret, token)
                    originals[token] = secret
            out.append(text)
        return {"texts": out, "originals": originals, "counts": {}}


def run_mask(body: dict[str, Any]) -> Masked:
    bookend = Bookend(BookendSettings(5.0), StubMasker(), NoMetrics())
    return asyncio.run(bookend.mask(json.dumps(body).encode()))


def strings(value: Any) -> Iterator[str]:
    """Every string and key in ``value``, and inside strings that hold JSON (tool call arguments)."""
    if isinstance(value, str):
        yield value
        try:
            decoded = json.loads(value)
        except ValueError:
            return
        if isinstance(decoded, dict | list):
            yield from strings(decoded)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def leaks(forwarded: bytes) -> list[str]:
    return [s for s in strings(json.loads(forwarded)) if any(secret in s for secret in SECRETS)]


# --- requests generated from vLLM's models ------------------------------------------------------------------

MAX_DEPTH = 7


def _fields(cls: Any) -> list[tuple[str, Any, bool]] | None:
    """(name as sent, annotation, required) of a TypedDict, pydantic model or dataclass; None for other types."""
    if typing_extensions.is_typeddict(cls):
        hints = typing_extensions.get_type_hints(cls, include_extras=True)
        return [
            (
                name,
                hint,
                name in cls.__required_keys__ or typing_extensions.get_origin(hint) is typing_extensions.Required,
            )
            for name, hint in hints.items()
        ]
    model_fields = getattr(cls, "model_fields", None)
    if isinstance(model_fields, dict):
        return [(f.alias or name, f.annotation, f.is_required()) for name, f in model_fields.items()]
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return [
            (f.name, hints[f.name], f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls)
            if f.init and not f.name.startswith("_")
        ]
    return None


def _unwrap(annotation: Any) -> Any:
    wrappers = (Annotated, typing_extensions.Required, typing_extensions.NotRequired, typing_extensions.ReadOnly)
    while typing_extensions.get_origin(annotation) in wrappers:
        annotation = typing_extensions.get_args(annotation)[0]
    return annotation


def clean(annotation: Any, depth: int = 0) -> Any:
    """A harmless value of the type (literals and enums their first value), for the fields not under test."""
    annotation = _unwrap(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return args[0]
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return clean(members[0], depth) if members else None
    if origin in (list, Iterable, Sequence, tuple) or annotation in (list, tuple):
        return []
    if origin is dict or annotation is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation)).value
    if annotation is bool:
        return True
    if annotation in (int, float):
        return 1
    fields = _fields(annotation)
    if fields is not None and depth < MAX_DEPTH:
        return {name: clean(hint, depth + 1) for name, hint, required in fields if required}
    return "plain"


def dirty(annotation: Any, depth: int = 0) -> list[Any]:
    """Values of the type, each carrying personal data in exactly one place (a free-form object: also as a key).
    Literals, enums and numbers get the PII string too: a client can send anything."""
    annotation = _unwrap(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if depth >= MAX_DEPTH:
        return [PII]
    if origin in (Union, types.UnionType):
        found = [value for member in args if member is not type(None) for value in dirty(member, depth)]
        return list({json.dumps(v, sort_keys=True): v for v in found}.values())
    if origin in (list, Iterable, Sequence, tuple):
        return [[value] for value in dirty(args[0] if args else Any, depth + 1)]
    if origin is dict:
        value_type = args[1] if args else Any
        return [{NAME: clean(value_type)}] + [{"k": value} for value in dirty(value_type, depth + 1)]
    if annotation is Any:
        return [PII, {NAME: "plain"}, {"k": PII}, [PII], {"k": {"deep": [PII]}}, {"description": PII, "title": PII}]
    fields = _fields(annotation)
    if fields is None:  # str, bytes, numbers, literals, enums, other classes
        return [PII]
    base = {name: clean(hint, depth + 1) for name, hint, required in fields if required}
    return [{**base, name: value} for name, hint, _ in fields for value in dirty(hint, depth + 1)]


def _vllm_models() -> tuple[Any, Any]:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest

    return ChatCompletionRequest, CompletionRequest


@pytest.fixture(scope="module")
def vllm_models() -> tuple[Any, Any]:
    return _vllm_models()


def sweep_cases(model: Any) -> list[tuple[str, dict[str, Any]]]:
    """(field, body) pairs: the base request with one field set to one PII-carrying value."""
    cases = []
    for name, field in model.model_fields.items():
        if name == "model":  # checked against the configured ids by the gate (test below)
            continue
        for value in dirty(field.annotation):
            cases.append((name, {**BASE, name: value}))
    extras = {
        "metadata": {"note": PII},
        "functions": [{"name": "f", "description": PII}],
        "prediction": PII,
        "x_unknown_field": PII,
        NAME: "plain",
        "audio": {"voice": PII},
    }
    cases += [(name, {**BASE, name: value}) for name, value in extras.items()]
    return cases


def _sweep(model: Any) -> tuple[dict[str, int], dict[str, int]]:
    forwarded: dict[str, int] = {}
    refused: dict[str, int] = {}
    for name, body in sweep_cases(model):
        try:
            masked = run_mask(body)
        except ApiError as err:
            assert err.status == 400 and err.code in REFUSAL_CODES, (name, err)
            expected = name if name.isidentifier() else "?"
            assert err.param == expected or (err.param or "").startswith((f"{expected}.", f"{expected}[")), (name, err)
            assert not any(secret in err.message + (err.param or "") for secret in SECRETS), err
            refused[name] = refused.get(name, 0) + 1
            continue
        assert not leaks(masked.body), (name, body, leaks(masked.body))
        forwarded[name] = forwarded.get(name, 0) + 1
    return forwarded, refused


def test_sweep_chat_request_fields(vllm_models) -> None:
    forwarded, refused = _sweep(vllm_models[0])
    # the masked fields really go out (masked), not only get refused
    for name in (
        "messages",
        "tools",
        "documents",
        "chat_template_kwargs",
        "response_format",
        "structured_outputs",
        "stop",
        "bad_words",
        "user",
        "metadata",
    ):
        assert forwarded.get(name), (name, forwarded, refused)
    assert refused.get("chat_template") and not forwarded.get("chat_template")
    assert refused.get("x_unknown_field") and refused.get(NAME) and refused.get("functions")
    assert sum(forwarded.values()) > 40 and sum(refused.values()) > 200, (forwarded, refused)


def test_sweep_completion_request_fields(vllm_models) -> None:
    forwarded, refused = _sweep(vllm_models[1])
    for name in ("prompt", "suffix", "stop", "bad_words", "response_format", "structured_outputs", "user"):
        assert forwarded.get(name), (name, forwarded, refused)
    assert refused.get("prompt_embeds") and not forwarded.get("prompt_embeds")


def test_every_vllm_field_is_classified(vllm_models) -> None:
    """A field a new vLLM adds fails here until it is put in the coverage table (and is refused meanwhile)."""
    vllm_fields = set(vllm_models[0].model_fields) | set(vllm_models[1].model_fields)
    assert vllm_fields - set(FIELDS) == set()
    assert set(FIELDS) - vllm_fields <= set(DROPPED)  # only OpenAI fields that vLLM ignores are extra
    assert set(MASKED) <= set(FIELDS)


# --- what masking does to the structured fields ---------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "title": f"Contact of {NAME}",
    "description": f"Send to {EMAIL}",
    "properties": {
        "who": {"type": "string", "enum": [NAME, "someone else"], "default": NAME, "examples": [NAME]},
        "phone": {"type": "string", "const": PHONE},
        "zip": {"type": "string", "pattern": r"^\d{5}$"},
        "address": {"$ref": "#/$defs/Address"},
    },
    "$defs": {
        "Address": {"type": "object", "description": f"{NAME}'s home", "properties": {"city": {"type": "string"}}}
    },
    "required": ["who", "phone"],
}


def test_tool_and_response_schemas_stay_valid_and_keep_their_structure() -> None:
    body = {
        **BASE,
        "tools": [
            {"type": "function", "function": {"name": "send", "description": f"Mail {EMAIL}", "parameters": SCHEMA}}
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "description": PII, "schema": SCHEMA, "strict": True},
        },
        "structured_outputs": {"json": json.dumps(SCHEMA)},
    }
    forwarded = json.loads(run_mask(body).body)
    assert not leaks(json.dumps(forwarded).encode())
    schemas = [
        forwarded["tools"][0]["function"]["parameters"],
        forwarded["response_format"]["json_schema"]["schema"],
        json.loads(forwarded["structured_outputs"]["json"]),
    ]
    for masked in schemas:
        jsonschema.Draft202012Validator.check_schema(masked)
        assert masked["properties"]["who"]["enum"] == ["<PERSON_1>", "someone else"]
        assert masked["required"] == ["who", "phone"] and set(masked["properties"]) == {
            "who",
            "phone",
            "zip",
            "address",
        }
        assert masked["properties"]["address"] == {"$ref": "#/$defs/Address"} and "Address" in masked["$defs"]
        # the model answers with placeholders, which the restorer turns back into the values
        jsonschema.validate({"who": "<PERSON_1>", "phone": "<PHONE_NUMBER_1>"}, masked)


def test_documents_template_kwargs_stop_and_reasoning_are_masked() -> None:
    body = {
        "model": "a",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": PII}, {"type": "thinking", "thinking": PII}]},
            {"role": "assistant", "content": "ok", "reasoning_content": PII, "reasoning": PII},
        ],
        "documents": [{"title": NAME, "text": PII}],
        "chat_template_kwargs": {"enable_thinking": False, "bio": PII},
        "stop": [NAME, "\n\n"],
        "bad_words": [EMAIL],
        "user": EMAIL,
        "metadata": {"who": NAME},
    }
    forwarded = json.loads(run_mask(body).body)
    assert not leaks(json.dumps(forwarded).encode())
    assert forwarded["documents"] == [
        {
            "title": "<PERSON_1>",
            "text": PII.replace(NAME, "<PERSON_1>")
            .replace(EMAIL, "<EMAIL_ADDRESS_1>")
            .replace(PHONE, "<PHONE_NUMBER_1>"),
        }
    ]
    assert forwarded["chat_template_kwargs"]["enable_thinking"] is False
    assert forwarded["stop"] == ["<PERSON_1>", "\n\n"] and forwarded["bad_words"] == ["<EMAIL_ADDRESS_1>"]
    assert "user" not in forwarded and "metadata" not in forwarded  # ignored by the engine: dropped


@pytest.mark.parametrize(
    "place",
    [
        {"tools": [{"type": "function", "function": {"name": NAME, "parameters": {}}}]},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"properties": {EMAIL: {}}}}}]},
        {"tool_choice": {"type": "function", "function": {"name": EMAIL}}},
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": PHONE, "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                }
            ]
        },
        {"request_id": EMAIL},
        {"logit_bias": {EMAIL: 1}},
    ],
)
def test_personal_data_where_it_cannot_be_masked_is_refused(place: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as refused:
        run_mask({**BASE, **place})
    error = refused.value
    assert error.status == 400 and error.code == UNMASKABLE_CODE and error.param.startswith(next(iter(place)))
    assert not any(secret in error.message + error.param for secret in SECRETS)


def test_clean_structural_values_are_not_refused() -> None:
    body = {
        **BASE,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
            }
        ],
        "tool_choice": "auto",
        "logit_bias": {"50256": -100},
        "stream_options": {"include_usage": True},
        "reasoning_effort": "low",
        "seed": 3,
        "temperature": 0.2,
        "cache_salt": "k3Jf9Qw2ZxP0aLmN8vB7",
    }
    masked = run_mask(body)
    assert json.loads(masked.body)["tools"] == body["tools"]


def test_fields_outside_the_allowlist_are_refused_before_the_masker_is_asked() -> None:
    masker = StubMasker()
    bookend = Bookend(BookendSettings(5.0), masker, NoMetrics())
    for body, param in (
        ({**BASE, "chat_template": "{{ messages }}"}, "chat_template"),
        ({**BASE, "functions": [{"name": "f"}]}, "functions"),
        (
            {
                "model": "a",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
                ],
            },
            "messages[0].content[0]",
        ),
        ({"model": "a", "prompt": "x", "prompt_embeds": "AAAA"}, "prompt_embeds"),
        ({**BASE, "response_format": {"type": "structural_tag", "format": {"type": "x"}}}, "response_format.format"),
    ):
        with pytest.raises(ApiError) as refused:
            asyncio.run(bookend.mask(json.dumps(body).encode()))
        assert (refused.value.status, refused.value.code, refused.value.param) == (400, NOT_ALLOWED_CODE, param)
    assert masker.asked == []


def test_unknown_fields_without_data_pass() -> None:
    """A client that sends back an assistant message as it got it (``annotations: []``, ``audio: null``)."""
    body = {
        **BASE,
        "messages": [
            {
                "role": "assistant",
                "content": "hi",
                "annotations": [],
                "audio": None,
                "function_call": None,
                "tool_calls": [],
            }
        ],
        "logprobs": None,
    }
    assert json.loads(run_mask(body).body)["messages"] == body["messages"]


# --- through the gate -------------------------------------------------------------------------------------------


class RecordingApp:
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        self.seen.append((await receive())["body"])
        answer = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def test_through_the_gate_refusals_are_openai_errors_and_masked_fields_arrive_masked(tmp_path: Path) -> None:
    from tests.unit.serve.pii.test_bookend import make_gate, post

    app = RecordingApp()
    gate, _, _, _ = make_gate(tmp_path, StubMasker(), engine=app)  # type: ignore[arg-type]
    status, _, body = post(gate, "/v1/chat/completions", {**BASE, "functions": [{"name": "f", "description": PII}]})
    error = json.loads(body)["error"]
    assert status == 400 and error["param"] == "functions" and error["code"] == NOT_ALLOWED_CODE
    assert error["type"] == "invalid_request_error"
    status, _, body = post(
        gate,
        "/v1/chat/completions",
        {**BASE, "tools": [{"type": "function", "function": {"name": "f", "description": PII}}], "user": EMAIL},
    )
    assert status == 200, body
    assert not leaks(app.seen[-1]) and b"<PERSON_1>" in app.seen[-1]
    status, _, body = post(gate, "/v1/chat/completions", {**BASE, "model": NAME})
    assert status == 404 and len(app.seen) == 1  # an unknown model never reaches the bookend or the engine
