"""Watching a response go by: time of the first token, and the token usage the engine reports.

For streams the gate asks the engine for a final usage chunk (``stream_options.include_usage``). When the
client did not ask for it, that chunk is taken out again here so the client sees exactly the stream it
asked for.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

_USAGE_MARK = b'"usage":{'
_MAX_CAPTURE = 4 * 1024 * 1024


class UsageWatcher:
    def __init__(self, *, stream: bool, strip_usage: bool) -> None:
        self.stream = stream
        self.strip_usage = strip_usage
        self.first_token_at: float | None = None
        self._usage: dict[str, Any] = {}
        self._captured: list[bytes] = []
        self._captured_size = 0

    def on_body(self, message: MutableMapping[str, Any], now: float) -> MutableMapping[str, Any]:
        chunk: bytes = message.get("body", b"")
        if not chunk:
            return message
        if self.stream:
            if self.first_token_at is None and b'"choices":[{' in chunk.replace(b": ", b":"):
                self.first_token_at = now
            if _USAGE_MARK in chunk.replace(b": ", b":"):
                kept = self._take_usage_events(chunk)
                if kept is not chunk:
                    message = dict(message)
                    message["body"] = kept
        elif self._captured_size < _MAX_CAPTURE:
            self._captured.append(chunk)
            self._captured_size += len(chunk)
        return message

    def _take_usage_events(self, chunk: bytes) -> bytes:
        """Record usage from the SSE events in ``chunk``; drop usage-only events if asked to."""
        kept: list[bytes] = []
        dropped = False
        for event in chunk.split(b"\n\n"):
            data = event.strip()
            if data.startswith(b"data:") and _USAGE_MARK in data.replace(b": ", b":"):
                payload = _json(data[5:].strip())
                if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
                    self._usage = payload["usage"]
                    if self.strip_usage and not payload.get("choices"):
                        dropped = True
                        continue
            kept.append(event)
        return b"\n\n".join(kept) if dropped else chunk

    def usage(self) -> dict[str, Any]:
        if not self.stream and self._captured:
            payload = _json(b"".join(self._captured))
            if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
                self._usage = payload["usage"]
        return self._usage


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
