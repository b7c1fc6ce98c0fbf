"""The audit log: one JSON line per API request, written and flushed line by line.

A line is flushed to the operating system before the request's handling ends, so a completed request's line
survives the process being killed afterwards. Requests are never served unaudited: :meth:`AuditLog.available`
says no while the last write failed or while the log's filesystem has less than ``min_free_bytes`` left (room
kept for the lines of requests already in flight), and the gate then refuses new requests with 503. Prompts are only present when the request checks put them in
(``AUDIT_LOG_PROMPTS``); the API key itself is never recorded, only its name.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

_LOGGER = logging.getLogger(__name__)

FIELDS = (
    "time",
    "request_id",
    "key",
    "role",
    "model",
    "endpoint",
    "method",
    "stream",
    "status",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "ttft_ms",
    "client",
    "client_request_id",
)


MIN_FREE_BYTES = 16 * 1024 * 1024  # below this, new requests are refused (in-flight ones still get their line)
FREE_CHECK_INTERVAL_S = 1.0


class AuditLog:
    """Appends records to ``path`` (created with mode 0640, parents made). Thread-safe."""

    def __init__(self, path: Path, *, min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.path = path
        self.min_free_bytes = min_free_bytes
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None
        self._last_write_failed = False
        self._free_checked_at = float("-inf")
        self._room = True

    def available(self) -> bool:
        """Whether a new request may be served: the filesystem has room and the log can be written. Checked at
        most once a second: the free space, and after a failed write whether the file opens for appending again
        (a full disk stays refused by the free-space check until room comes back)."""
        now = time.monotonic()
        if now - self._free_checked_at >= FREE_CHECK_INTERVAL_S:
            self._free_checked_at = now
            self._room = self._has_room()
            if self._last_write_failed and self._room:
                self._last_write_failed = not self._reopens()
        return self._room and not self._last_write_failed

    def _has_room(self) -> bool:
        directory = self.path.parent
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
        try:
            stat = os.statvfs(directory)
        except OSError:
            return False
        return stat.f_bavail * stat.f_frsize >= self.min_free_bytes

    def _reopens(self) -> bool:
        try:
            with self._lock:
                self._open()
            return True
        except OSError:
            return False

    def _open(self) -> IO[str]:
        if self._handle is None or self._handle.closed or not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._handle = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        return self._handle

    def write(self, record: dict[str, Any]) -> bool:
        """Append the record's line; False when it could not be written (logged, and new requests refused)."""
        line: dict[str, Any] = {"time": datetime.now(UTC).isoformat(timespec="milliseconds")}
        line.update({field: record.get(field) for field in FIELDS if field != "time"})
        if "prompt" in record:
            line["prompt"] = record["prompt"]
        if record.get("batch_id"):  # a line of a batch (appliance.batch), sent by the batch runner
            line["batch_id"] = record["batch_id"]
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            with self._lock:
                handle = self._open()
                handle.write(text)
                handle.flush()
            self._last_write_failed = False
            return True
        except OSError as err:
            self._last_write_failed = True
            self._free_checked_at = time.monotonic()  # refused from now; looked at again after the interval
            with self._lock:  # a half-written buffer must not be flushed into the next line
                if self._handle is not None:
                    try:
                        self._handle.close()
                    except OSError:
                        pass
                    self._handle = None
            _LOGGER.error(
                "could not write the audit log %s (%s): new requests are refused with 503 until it can",
                self.path,
                err.strerror or type(err).__name__,
            )
            return False

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
