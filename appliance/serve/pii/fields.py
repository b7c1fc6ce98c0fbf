"""Every text of a generation request that the model will see, read out and written back in place.

:func:`plan_request` walks the body with the coverage table (:mod:`appliance.serve.pii.coverage`): the texts
to mask (message contents and text parts, names, reasoning, tool call arguments, tool descriptions and
parameter schemas, response-format schemas, documents, template arguments, ``stop``, ``bad_words``, prompt and
suffix), the strings to check (names, ids, schema keys: refused if they hold personal data), the fields to
drop (ignored by the engine), and refuses everything outside the allowlist with a 400 naming the field.
Pure: no Presidio, no I/O.

Strings inside JSON text (tool call arguments, a schema sent as text) are texts of their own
(``TextField.inner`` is their place in the decoded JSON), so the analyzer sees ``O"Brien`` and not
``O\\"Brien``, a placeholder's value is the real value, and masking writes valid JSON back. The restorer then
JSON-escapes values it puts into arguments. JSON text that is not an object or array is one text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.serve.pii.coverage import FIELDS
from appliance.serve.pii.walker import Check, Path, Spec, TextField, Walk, walk_object

__all__ = ["Check", "Path", "RequestPlan", "TextField", "plan_request", "replace_texts", "request_texts"]


@dataclass(frozen=True)
class RequestPlan:
    masked: list[TextField]  # in order of appearance (so placeholder numbers follow the conversation)
    checks: list[Check]  # strings that must come back from the analyser unchanged
    dropped: tuple[str, ...]  # fields removed from the body


def _walk(body: dict[str, Any], fields: Mapping[str, Spec] = FIELDS) -> Walk:
    walk = Walk()
    walk_object(walk, body, fields, (), "")
    return walk


def plan_request(body: dict[str, Any], fields: Mapping[str, Spec] = FIELDS) -> RequestPlan:
    """What to do with ``body`` before it may go to the engine; drops the ignored fields from ``body`` (in
    place). Raises ApiError 400 for a field outside the allowlist or a value that cannot be masked. ``fields``:
    the coverage table (generation by default; :mod:`appliance.serve.pii.pooling` for embeddings and scores)."""
    walk = _walk(body, fields)
    if walk.refusals:
        raise walk.refusals[0].error()
    for name in walk.dropped:
        body.pop(name, None)
    return RequestPlan(walk.masked, walk.checks, tuple(walk.dropped))


def request_texts(body: dict[str, Any]) -> list[TextField]:
    """The texts to mask, in order of appearance (ApiError only for a body whose texts cannot be read out)."""
    return _walk(body).masked


def replace_texts(body: dict[str, Any], fields: list[TextField], texts: list[str]) -> dict[str, Any]:
    """``body`` with each field's text replaced by the text at the same index (the body is changed in place)."""
    if len(fields) != len(texts):
        raise ValueError(f"{len(fields)} fields but {len(texts)} texts")
    decoded: dict[Path, Any] = {}  # JSON text, decoded once, written back once
    for field, text in zip(fields, texts, strict=True):
        if field.inner is None:
            _set(body, field.path, text)
            continue
        if field.path not in decoded:
            decoded[field.path] = json.loads(_get(body, field.path))
        _set(decoded[field.path], field.inner, text)
    for path, value in decoded.items():
        _set(body, path, json.dumps(value, ensure_ascii=False))
    return body


def _get(node: Any, path: Path) -> Any:
    for key in path:
        node = node[key]
    return node


def _set(node: Any, path: Path, value: Any) -> None:
    _get(node, path[:-1])[path[-1]] = value
