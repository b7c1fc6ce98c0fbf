"""Watching a response go by: time of the first token, the token usage the engine reports, the stream's end.

For streams the gate asks the engine for a final usage chunk (``stream_options.include_usage``). When the
client did not ask for it, that chunk is taken out again here so the client sees exactly the stream it
asked for.

A stream is read as whole SSE events (``…\\n\\n``): an event split across body chunks is held back until it is
complete, so nothing is decided on a fragment. The stream has ended only at an event whose data is exactly
``[DONE]``: a model reply that *says* ``data: [DONE]`` is JSON-escaped inside a data line and does not count.
Error events relayed from the engine are rewritten to the OpenAI message alone (:func:`clean_error`).
"""

from __future__ import annotations

import json
import re
from collections.abc import MutableMapping
from typing import Any

from appliance.serve.errors import error_type

_USAGE_MARK = b'"usage":{'
_ERROR_MARK = b'"error":{'
_CHOICE_MARK = b'"choices":[{'
_RESPONSES_DELTA = b'"type":"response.'  # a Responses stream event ...
_DELTA_END = b'.delta"'  # ... that carries generated text (output_text / reasoning_text / arguments deltas)
_COMPLETED = (b"response.completed", b"response.incomplete", b"response.failed")
_DONE = (b"data: [DONE]", b"data:[DONE]")
_MAX_CAPTURE = 4 * 1024 * 1024
_MAX_TAIL = 8 * 1024 * 1024  # a partial event larger than this is passed on as it is
_LAST_BYTES = 64 * 1024  # of a JSON answer larger than _MAX_CAPTURE (a big embeddings batch): its end, with usage
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*(\{[^{}]*\})')

# ray.llm wraps an engine error as "Message: <m> (Request ID: …), Internal exception: …, original exception: …"
_RAY_WRAPPED = re.compile(r"\AMessage: (?P<message>.*?), Internal exception: ", re.S)
_RAY_REQUEST_ID = re.compile(r"\s*\(Request ID: [^)]*\)")
ANSI_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal colour codes (Ray's exception text has them)


def clean_error(error: Any, status: int, request_id: str) -> dict[str, Any]:
    """An engine's error object as the client may see it: OpenAI's fields, the message without Ray's wrapping,
    class names or terminal codes, and the appliance's own request id."""
    error = error if isinstance(error, dict) else {}
    message = error.get("message")
    message = message if isinstance(message, str) else "The request failed."
    wrapped = _RAY_WRAPPED.match(message)
    if wrapped:
        message = wrapped.group("message")
    message = ANSI_CODES.sub("", _RAY_REQUEST_ID.sub("", message)).strip()[:2000] or "The request failed."
    code = error.get("code")
    param = error.get("param")
    return {
        "message": f"{message} (request id: {request_id})",
        "type": error_type(status),
        "param": param if isinstance(param, str) else None,
        "code": code if isinstance(code, str) else None,
    }


class UsageWatcher:
    def __init__(self, *, stream: bool, strip_usage: bool, request_id: str = "-") -> None:
        self.stream = stream
        self.strip_usage = strip_usage
        self.request_id = request_id
        self.first_token_at: float | None = None
        self.done = False  # the stream's [DONE] event has gone by
        self._usage: dict[str, Any] = {}
        self._captured: list[bytes] = []
        self._captured_size = 0
        self._overflow = False
        self._last = b""
        self._tail = b""

    def on_body(self, message: MutableMapping[str, Any], now: float) -> MutableMapping[str, Any]:
        chunk: bytes = message.get("body", b"")
        if not self.stream:
            if chunk and self._captured_size < _MAX_CAPTURE:
                self._captured.append(chunk)
                self._captured_size += len(chunk)
            elif chunk:
                self._overflow = True
            self._last = (self._last + chunk)[-_LAST_BYTES:]
            return message
        last = not message.get("more_body", False)
        parts = (self._tail + chunk if self._tail else chunk).split(b"\n\n")
        tail = parts.pop()  # an incomplete event (b"" when the data ended with a separator)
        out: list[bytes] = []
        for event in parts:
            kept = self._on_event(event, now)
            if kept is not None:
                out.append(kept + b"\n\n")
        if last and tail:
            kept = self._on_event(tail, now)
            out.append(kept or b"")
            tail = b""
        elif len(tail) > _MAX_TAIL:  # not an SSE stream after all: pass it on rather than hold it
            out.append(tail)
            tail = b""
        self._tail = tail
        body = b"".join(out)
        if body == chunk:
            return message
        message = dict(message)
        message["body"] = body
        return message

    def _on_event(self, event: bytes, now: float) -> bytes | None:
        """The event to pass on (None: drop it), after recording what it says."""
        data = event.strip()
        if not data:
            return event
        if data in _DONE:
            self.done = True
            return event
        compact = data.replace(b": ", b":")
        if self.first_token_at is None and (
            _CHOICE_MARK in compact or (_RESPONSES_DELTA in compact and _DELTA_END in compact)
        ):
            self.first_token_at = now
        if data.startswith(b"event:"):  # the Responses API: "event: <type>" then "data: {...}"
            self._on_responses_event(data)
            return event
        if _USAGE_MARK in compact and data.startswith(b"data:"):
            payload = _json(data[5:].strip())
            if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
                self._usage = payload["usage"]
                if self.strip_usage and not payload.get("choices"):
                    return None
        if _ERROR_MARK in compact and data.startswith(b"data:"):
            payload = _json(data[5:].strip())
            if isinstance(payload, dict) and "error" in payload and "choices" not in payload:
                error = payload["error"]
                status = _event_status(error)
                cleaned = {"error": clean_error(error, status, self.request_id)}
                return b"data: " + json.dumps(cleaned, separators=(",", ":")).encode()
        return event

    def _on_responses_event(self, data: bytes) -> None:
        """The final event of a Responses stream carries the whole response, with its usage."""
        kind, _, rest = data.partition(b"\n")
        if not any(name in kind for name in _COMPLETED) or not rest.startswith(b"data:"):
            return
        payload = _json(rest[5:].strip())
        response = payload.get("response") if isinstance(payload, dict) else None
        if isinstance(response, dict) and isinstance(response.get("usage"), dict):
            self._usage = response["usage"]

    def usage(self) -> dict[str, Any]:
        """The engine's token counts as chat names them (the Responses API's input/output tokens mapped)."""
        return _chat_names(self._read_usage())

    def _read_usage(self) -> dict[str, Any]:
        if not self.stream and self._captured:
            payload = _json(b"".join(self._captured)) if not self._overflow else None
            if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
                self._usage = payload["usage"]
            elif self._overflow:  # too large to keep whole: the usage object at its end (vLLM writes it last)
                found = [_json(m.group(1)) for m in _USAGE_OBJECT.finditer(self._last)]
                if found and isinstance(found[-1], dict):
                    self._usage = found[-1]
        return self._usage


def _chat_names(usage: dict[str, Any]) -> dict[str, Any]:
    """``input_tokens`` / ``output_tokens`` (Responses API) as ``prompt_tokens`` / ``completion_tokens``."""
    if "prompt_tokens" in usage or "input_tokens" not in usage:
        return usage
    return {**usage, "prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens")}


def _event_status(error: Any) -> int:
    """The status an error event stands for: the engine's numeric code, else the one of its OpenAI type
    (the ingress's own 503 event says ``service_unavailable_error``), else 500."""
    if not isinstance(error, dict):
        return 500
    if isinstance(error.get("code"), int):
        return int(error["code"])
    return 503 if error.get("type") == "service_unavailable_error" else 500


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
