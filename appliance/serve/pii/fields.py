"""Every text of a generation request that the model will see, read out and written back in place.

Chat: each message's ``content`` (a string, or the ``text`` of its text parts), ``name``, each tool call's
``function.arguments`` (and the legacy ``function_call.arguments``); tool results are messages of role
``tool`` / ``function`` and so are covered by ``content``. Completions: ``prompt`` (string or list of
strings) and ``suffix``. Pure: no Presidio, no I/O.

Tool call arguments are JSON text. When they parse as a JSON object or array, each string value in them is a
text of its own (``TextField.inner`` is its place in the decoded arguments), so the analyzer sees
``O"Brien`` and not ``O\\"Brien``, a placeholder's value is the real value, and masking writes valid JSON back.
The restorer then JSON-escapes values it puts into arguments. Arguments that are not JSON are one text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from appliance.serve.errors import ApiError

# A location of a text in the body: a path of keys / indexes from the body's root.
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class TextField:
    path: Path
    text: str
    inner: Path | None = None  # for a string inside JSON arguments: its place in the decoded arguments


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
                _argument_texts(function["arguments"], (*at, "tool_calls", index, "function", "arguments"), found)
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        _argument_texts(legacy["arguments"], (*at, "function_call", "arguments"), found)


def _argument_texts(arguments: str, at: Path, found: list[TextField]) -> None:
    try:
        decoded = json.loads(arguments)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict | list):
        found.append(TextField(at, arguments))
        return
    found.extend(TextField(at, text, inner) for inner, text in _json_strings(decoded, ()))


def _json_strings(value: Any, at: Path) -> list[tuple[Path, str]]:
    if isinstance(value, str):
        return [(at, value)]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [found for key, item in items for found in _json_strings(item, (*at, key))]


def replace_texts(body: dict[str, Any], fields: list[TextField], texts: list[str]) -> dict[str, Any]:
    """``body`` with each field's text replaced by the text at the same index (the body is changed in place)."""
    if len(fields) != len(texts):
        raise ValueError(f"{len(fields)} fields but {len(texts)} texts")
    decoded: dict[Path, Any] = {}  # JSON arguments, decoded once, written back once
    for field, text in zip(fields, texts, strict=True):
        if field.inner is None:
            _set(body, field.path, text)
            continue
        if field.path not in decoded:
            decoded[field.path] = json.loads(_get(body, field.path))
        _set(decoded[field.path], field.inner, text)
    for path, arguments in decoded.items():
        _set(body, path, json.dumps(arguments, ensure_ascii=False))
    return body


def _get(node: Any, path: Path) -> Any:
    for key in path:
        node = node[key]
    return node


def _set(node: Any, path: Path, value: Any) -> None:
    _get(node, path[:-1])[path[-1]] = value
