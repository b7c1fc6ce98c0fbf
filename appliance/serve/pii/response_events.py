"""Restoring a Responses API answer (``POST /v1/responses``): the response object, or its event stream.

The response object's texts are in ``output``: message items' text parts, function calls' ``arguments`` (JSON
text: restored values are JSON-escaped) and reasoning items' content and summary. A stream (``event: <type>`` +
``data: {...}``) sends each text as ``*.delta`` events, then a ``*.done`` event with the whole text, then the
whole item (``response.output_item.done``) and the whole response (``response.completed``). Deltas go through a
:class:`~appliance.serve.pii.restore.StreamRestorer` per (output item, part, kind): the tail that may still
become a placeholder is held back, and whatever is held when the text's ``*.done`` event arrives goes out
first, as one more delta event of the same text. Whole texts in ``*.done`` events are restored whole.
Pure: bytes in, bytes out.
"""

from __future__ import annotations

import json
from typing import Any

from appliance.serve.pii.restore import Restorer, StreamRestorer

_FINAL = ("response.completed", "response.incomplete", "response.failed", "response.in_progress", "response.created")
# the delta events' kinds whose text is JSON (restored values JSON-escaped)
_JSON_TEXT = ("response.function_call_arguments",)
# a *.done event: the field with the whole text
_DONE_FIELD = {
    "response.output_text": "text",
    "response.reasoning_text": "text",
    "response.reasoning_summary_text": "text",
    "response.function_call_arguments": "arguments",
    "response.refusal": "refusal",
}

Key = tuple[int, int, str]  # (output index, content / summary index, kind)


def is_response(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("object") == "response" and isinstance(payload.get("output"), list)


def restore_response(payload: dict[str, Any], restorer: Restorer) -> bool:
    """Every text of a response object restored in place; whether anything changed."""
    changed = False
    for item in payload.get("output") or ():
        if isinstance(item, dict):
            changed |= restore_item(item, restorer)
    return changed


def restore_item(item: dict[str, Any], restorer: Restorer) -> bool:
    """One output item: a message's text parts, a function call's arguments, a reasoning item's texts."""
    changed = False
    if isinstance(item.get("arguments"), str):
        changed |= _restore_field(item, "arguments", restorer.json_escaped())
    for list_name in ("content", "summary"):
        for part in item.get(list_name) or ():
            if isinstance(part, dict):
                changed |= restore_part(part, restorer)
    return changed


def restore_part(part: dict[str, Any], restorer: Restorer) -> bool:
    changed = False
    for name in ("text", "refusal"):
        if isinstance(part.get(name), str):
            changed |= _restore_field(part, name, restorer)
    return changed


def _restore_field(holder: dict[str, Any], name: str, restorer: Restorer) -> bool:
    restored = restorer.restore(holder[name])
    changed: bool = restored != holder[name]
    holder[name] = restored
    return changed


class ResponsesEvents:
    """The restoring state of one Responses stream. ``event`` takes one whole SSE event (without its ``\\n\\n``)."""

    def __init__(self, restorer: Restorer) -> None:
        self._restorer = restorer
        self._streams: dict[Key, StreamRestorer] = {}

    def event(self, event: bytes) -> bytes:
        payload = data_payload(event.strip().partition(b"\n")[2])  # after the "event: <type>" line
        if payload is None or not isinstance(payload.get("type"), str):
            return event + b"\n\n"
        out: list[dict[str, Any]] = []
        if not self._restore(payload, out):
            return event + b"\n\n"
        return b"".join(_sse(p) for p in [*out, payload])

    def _restore(self, payload: dict[str, Any], before: list[dict[str, Any]]) -> bool:
        """Restore ``payload`` in place; events to send before it go to ``before``. Whether anything changed."""
        kind = payload["type"]
        if kind in _FINAL:
            response = payload.get("response")
            return isinstance(response, dict) and restore_response(response, self._restorer)
        if kind == "response.output_item.done" and isinstance(payload.get("item"), dict):
            return restore_item(payload["item"], self._restorer)
        if kind.endswith("part.done") and isinstance(payload.get("part"), dict):
            return restore_part(payload["part"], self._restorer)
        family, _, phase = kind.rpartition(".")
        if family not in _DONE_FIELD:
            return False
        key = (_index(payload, "output_index"), _index(payload, "content_index", "summary_index"), family)
        if phase == "delta" and isinstance(payload.get("delta"), str):
            return _set(payload, "delta", self._stream(key).feed(payload["delta"]))
        if phase != "done":
            return False
        stream = self._streams.pop(key, None)
        held = stream.flush() if stream is not None else ""
        if held:
            extra = {k: v for k, v in payload.items() if k not in ("text", "arguments", "refusal", "logprobs")}
            extra.update(type=f"{family}.delta", delta=held)
            if family == "response.output_text":
                extra["logprobs"] = []
            before.append(extra)
        name = _DONE_FIELD[family]
        restorer = self._restorer.json_escaped() if family in _JSON_TEXT else self._restorer
        changed = isinstance(payload.get(name), str) and _restore_field(payload, name, restorer)
        return bool(held) or changed

    def _stream(self, key: Key) -> StreamRestorer:
        stream = self._streams.get(key)
        if stream is None:
            restorer = self._restorer.json_escaped() if key[2] in _JSON_TEXT else self._restorer
            stream = self._streams[key] = restorer.stream()
        return stream

    def finish(self) -> bytes:
        """A stream that ended without its ``*.done`` events: what is still held, as delta events."""
        out = []
        for (output_index, content_index, family), stream in sorted(self._streams.items()):
            held = stream.flush()
            if held:
                out.append(
                    _sse(
                        {
                            "type": f"{family}.delta",
                            "output_index": output_index,
                            "content_index": content_index,
                            "delta": held,
                        }
                    )
                )
        self._streams.clear()
        return b"".join(out)


def data_payload(line: bytes) -> dict[str, Any] | None:
    """The JSON object of an SSE ``data:`` line; None for any other line or data."""
    line = line.strip()
    if not line.startswith(b"data:"):
        return None
    try:
        payload = json.loads(line[5:])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _index(payload: dict[str, Any], *names: str) -> int:
    for name in names:
        if isinstance(payload.get(name), int):
            return int(payload[name])
    return -1


def _set(holder: dict[str, Any], name: str, value: str) -> bool:
    changed: bool = holder[name] != value
    holder[name] = value
    return changed


def _sse(payload: dict[str, Any]) -> bytes:
    return (
        b"event: "
        + str(payload["type"]).encode()
        + b"\ndata: "
        + json.dumps(payload, ensure_ascii=False).encode()
        + b"\n\n"
    )
