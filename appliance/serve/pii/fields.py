"""Every text of a generation request that the model will see, read out and written back in place.

Chat: each message's ``content`` (a string, or the ``text`` of its text parts), ``name``, each tool call's
``function.arguments`` (and the legacy ``function_call.arguments``); tool results are messages of role
``tool`` / ``function`` and so are covered by ``content``. Completions: ``prompt`` (string or list of
strings) and ``suffix``. Pure: no Presidio, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.serve.errors import ApiError

# A location of a text in the body: a path of keys / indexes from the body's root.
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class TextField:
    path: Path
    text: str


def request_texts(body: dict[str, Any]) -> list[TextField]:
    """The texts to analyse, in order of appearance (so placeholder numbers follow the conversation)."""
    found: list[TextField] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for index, message in enumerate(messages):
            if isinstance(message, dict):
                _message_texts(message, ("messages", index), found)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        found.append(TextField(("prompt",), prompt))
    elif isinstance(prompt, list):
        for index, item in enumerate(prompt):
            if isinstance(item, str):
                found.append(TextField(("prompt", index), item))
            elif item is not None:
                raise ApiError(400, "With PII masking on, 'prompt' must be text: token-id prompts cannot be "
                                    "checked for personal data.", "pii_unmaskable_prompt", "prompt")  # fmt: skip
    elif prompt is not None:
        raise ApiError(400, "'prompt' must be a string or a list of strings.", "invalid_type", "prompt")
    if isinstance(body.get("suffix"), str):
        found.append(TextField(("suffix",), body["suffix"]))
    return [field for field in found if field.text]


def _message_texts(message: dict[str, Any], at: Path, found: list[TextField]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        found.append(TextField((*at, "content"), content))
    elif isinstance(content, list):
        for index, part in enumerate(content):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                found.append(TextField((*at, "content", index, "text"), part["text"]))
    if isinstance(message.get("name"), str):
        found.append(TextField((*at, "name"), message["name"]))
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for index, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                found.append(TextField((*at, "tool_calls", index, "function", "arguments"), function["arguments"]))
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        found.append(TextField((*at, "function_call", "arguments"), legacy["arguments"]))


def replace_texts(body: dict[str, Any], fields: list[TextField], texts: list[str]) -> dict[str, Any]:
    """``body`` with each field's text replaced by the text at the same index (the body is changed in place)."""
    if len(fields) != len(texts):
        raise ValueError(f"{len(fields)} fields but {len(texts)} texts")
    for field, text in zip(fields, texts, strict=True):
        node: Any = body
        for key in field.path[:-1]:
            node = node[key]
        node[field.path[-1]] = text
    return body
