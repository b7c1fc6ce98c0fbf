"""The audit log: one JSON line per API request, written and flushed line by line.

A line is flushed to the operating system before the request's handling ends, so a completed request's line
survives the process being killed afterwards. Prompts are only present when the request checks put them in
(``AUDIT_LOG_PROMPTS``); the API key itself is never recorded, only its name.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

_LOGGER = logging.getLogger(__name__)

FIELDS = ("time", "request_id", "key", "role", "model", "endpoint", "method", "stream", "status", "error",
          "prompt_tokens", "completion_tokens", "latency_ms", "ttft_ms", "client", "client_request_id")  # fmt: skip


class AuditLog:
    """Appends records to ``path`` (created with mode 0640, parents made). Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None

    def _open(self) -> IO[str]:
        if self._handle is None or self._handle.closed or not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._handle = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        return self._handle

    def write(self, record: dict[str, Any]) -> None:
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds")}
        line.update({field: record.get(field) for field in FIELDS if field != "time"})
        if "prompt" in record:
            line["prompt"] = record["prompt"]
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            with self._lock:
                handle = self._open()
                handle.write(text)
                handle.flush()
        except OSError:
            _LOGGER.exception("could not write the audit log %s", self.path)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
