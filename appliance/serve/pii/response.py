"""Restoring an OpenAI response body: a whole JSON answer, or a Server-Sent-Events stream chunk by chunk.

A choice's ``stop_reason`` (the stop string that ended it: ``stop`` is masked too) is restored whole.
Each choice has its own text streams (``content``, ``reasoning_content``, completions' ``text``, and one per
tool call's ``arguments``), each with its own :class:`~appliance.serve.pii.restore.StreamRestorer`. Text
held back at the end of one event goes out in a later event of the same choice; a choice's
``finish_reason`` flushes its streams into that event (values restored into tool call arguments are
JSON-escaped, since arguments are JSON text), and whatever is still held when the stream ends
goes out in one extra event before ``data: [DONE]``. Events are parsed only once complete (``\\n\\n``), so a
UTF-8 character split between two network chunks is never cut. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from appliance.serve.pii.response_events import ResponsesEvents, data_payload, is_response, restore_response
from appliance.serve.pii.restore import Restorer, StreamRestorer

_DONE = b"data: [DONE]"
StreamKey = tuple[int, str, int]  # (choice index, field, tool call index or -1)


def restore_json(body: bytes, restorer: Restorer) -> bytes:
    """A non-streaming chat / completions answer with every choice's texts restored (unparseable: unchanged)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body
    if isinstance(payload, dict) and isinstance(payload.get("results"), list):
        return _restore_rerank(payload, body, restorer)
    if is_response(payload):  # the Responses API
        return json.dumps(payload, ensure_ascii=False).encode() if restore_response(payload, restorer) else body
    if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
        return body
    changed = False
    for choice in payload["choices"]:
        if not isinstance(choice, dict):
            continue
        changed |= _restore_stop_reason(choice, restorer)
        for holder, name in _text_slots(choice, "message"):
            restored = (restorer.json_escaped() if name == "arguments" else restorer).restore(holder[name])
            if restored != holder[name]:
                holder[name] = restored
                changed = True
    return json.dumps(payload, ensure_ascii=False).encode() if changed else body


def _restore_rerank(payload: dict[str, Any], body: bytes, restorer: Restorer) -> bytes:
    """A rerank answer: the documents it returns (``results[].document.text``) with the user's values back."""
    changed = False
    for result in payload["results"]:
        document = result.get("document") if isinstance(result, dict) else None
        if isinstance(document, dict) and isinstance(document.get("text"), str):
            restored = restorer.restore(document["text"])
            changed |= restored != document["text"]
            document["text"] = restored
    return json.dumps(payload, ensure_ascii=False).encode() if changed else body


def _restore_stop_reason(choice: dict[str, Any], restorer: Restorer) -> bool:
    """vLLM's ``stop_reason``: the stop string that ended the choice (a masked one names a placeholder)."""
    reason = choice.get("stop_reason")
    if not isinstance(reason, str):
        return False
    restored = restorer.restore(reason)
    choice["stop_reason"] = restored
    return restored != reason


def _text_slots(choice: dict[str, Any], container: str) -> list[tuple[dict[str, Any], str]]:
    """(dict, key) pairs of the texts in one choice (``container`` is "message" or "delta")."""
    slots: list[tuple[dict[str, Any], str]] = []
    if isinstance(choice.get("text"), str):
        slots.append((choice, "text"))
    inner = choice.get(container)
    if isinstance(inner, dict):
        for name in ("content", "reasoning_content", "reasoning"):
            if isinstance(inner.get(name), str):
                slots.append((inner, name))
        for call in inner.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                slots.append((function, "arguments"))
        legacy = inner.get("function_call")
        if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
            slots.append((legacy, "arguments"))
    return slots


class SseRestorer:
    """One streamed response. ``feed`` each body chunk, then ``finish`` once; both return bytes to send."""

    def __init__(self, restorer: Restorer) -> None:
        self._restorer = restorer
        self._buffer = b""
        self._streams: dict[StreamKey, StreamRestorer] = {}
        self._last: dict[int, dict[str, Any]] = {}  # choice index -> last event payload (for a final flush)
        self._finished = False
        self._responses: ResponsesEvents | None = None  # a Responses API stream (``event:`` lines)

    def feed(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        out: list[bytes] = []
        while True:
            cut = self._buffer.find(b"\n\n")
            if cut < 0:
                break
            event, self._buffer = self._buffer[:cut], self._buffer[cut + 2 :]
            out.append(self._event(event))
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the body: an incomplete last event, then anything still held."""
        rest, self._buffer = self._buffer, b""
        out = self._event(rest) if rest.strip() else rest
        if self._responses is not None:
            out += self._responses.finish()
        return out + (self._flush_all() if not self._finished else b"")

    def _event(self, event: bytes) -> bytes:
        data = event.strip()
        if data == _DONE:
            return self._flush_all() + event + b"\n\n"
        if data.startswith(b"event:"):
            if self._responses is None:
                self._responses = ResponsesEvents(self._restorer)
            return self._responses.event(event)
        payload = data_payload(data)
        if payload is None or not isinstance(payload.get("choices"), list) or not payload["choices"]:
            return event + b"\n\n"
        changed = False
        for choice in payload["choices"]:
            if isinstance(choice, dict):
                changed |= self._choice(choice, payload)
        if not changed:
            return event + b"\n\n"
        return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

    def _choice(self, choice: dict[str, Any], payload: dict[str, Any]) -> bool:
        index = choice.get("index", 0) if isinstance(choice.get("index"), int) else 0
        changed = _restore_stop_reason(choice, self._restorer)
        for holder, name, key in self._slots(choice, index):
            text = holder[name]
            restored = self._stream(key).feed(text)
            if restored != text:
                holder[name] = restored
                changed = True
        if choice.get("finish_reason") is not None:
            changed |= self._flush_choice(choice, index)
        else:
            self._last[index] = payload
        return changed

    def _slots(self, choice: dict[str, Any], index: int) -> list[tuple[dict[str, Any], str, StreamKey]]:
        slots = []
        if isinstance(choice.get("text"), str):
            slots.append((choice, "text", (index, "text", -1)))
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for name in ("content", "reasoning_content", "reasoning"):
                if isinstance(delta.get(name), str):
                    slots.append((delta, name, (index, name, -1)))
            for position, call in enumerate(delta.get("tool_calls") or ()):
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    call_index = call.get("index", position) if isinstance(call.get("index"), int) else position
                    slots.append((function, "arguments", (index, "tool", call_index)))
        return slots

    def _stream(self, key: StreamKey) -> StreamRestorer:
        stream = self._streams.get(key)
        if stream is None:
            restorer = self._restorer.json_escaped() if key[1] == "tool" else self._restorer
            stream = self._streams[key] = restorer.stream()
        return stream

    def _flush_choice(self, choice: dict[str, Any], index: int) -> bool:
        """Put what the choice's streams still hold into ``choice`` (its last event)."""
        changed = False
        for key in sorted(k for k in self._streams if k[0] == index):
            held = self._streams.pop(key).flush()
            if not held:
                continue
            changed = True
            _, name, call_index = key
            if name == "text":
                choice["text"] = (choice.get("text") or "") + held
                continue
            delta = choice.setdefault("delta", {})
            if name == "tool":
                calls = delta.setdefault("tool_calls", [])
                call = next((c for c in calls if isinstance(c, dict) and c.get("index") == call_index), None)
                if call is None:
                    call = {"index": call_index, "function": {"arguments": ""}}
                    calls.append(call)
                function = call.setdefault("function", {})
                function["arguments"] = (function.get("arguments") or "") + held
            else:
                delta[name] = (delta.get(name) or "") + held
        self._last.pop(index, None)
        return changed

    def _flush_all(self) -> bytes:
        """One extra event per choice that still holds text (a stream that ended without a finish_reason)."""
        self._finished = True
        out = []
        for index in sorted({key[0] for key in self._streams}):
            template = self._last.get(index, {})
            payload = {k: copy.deepcopy(v) for k, v in template.items() if k not in ("choices", "usage")}
            choice: dict[str, Any] = {"index": index, "finish_reason": None}
            if any(key[1] != "text" for key in self._streams if key[0] == index):
                choice["delta"] = {}
            if self._flush_choice(choice, index):
                payload["choices"] = [choice]
                out.append(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")
        self._streams.clear()
        return b"".join(out)
