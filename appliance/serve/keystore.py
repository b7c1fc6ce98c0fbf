"""The API keys the ingress accepts, reloaded from ``.secrets`` when the file changes.

``keys create`` / ``keys revoke`` take effect within ``reload_interval`` seconds without a restart. If the
file becomes unreadable or invalid, the last good set stays in force and the problem is logged (without
values).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from appliance.config.dotenv import parse_dotenv
from appliance.config.secrets import ApiKeyRecord, parse_api_keys

_LOGGER = logging.getLogger(__name__)


def read_key_records(path: Path) -> tuple[ApiKeyRecord, ...]:
    parsed = parse_dotenv(path.read_text(encoding="utf-8"), str(path), secret=True)
    records, failures = parse_api_keys((key, entry.value) for key, entry in parsed.entries.items())
    for key, err in failures:
        _LOGGER.error("%s line %s: %s is malformed (expected %s); ignored", path, parsed.line_of(key), key, err.expected)
    return tuple(records)


class KeyStore:
    def __init__(
        self, records: tuple[ApiKeyRecord, ...], path: Path | None = None, *, reload_interval: float = 1.0
    ) -> None:
        self._records = records
        self._path = path
        self._interval = reload_interval
        self._checked = time.monotonic()
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def records(self) -> tuple[ApiKeyRecord, ...]:
        now = time.monotonic()
        if self._path is not None and now - self._checked >= self._interval:
            self._checked = now
            stamp = self._file_stamp()
            if stamp is not None and stamp != self._stamp:
                try:
                    self._records = read_key_records(self._path)
                    self._stamp = stamp
                    _LOGGER.info("reloaded %d API key(s) from %s", len(self._records), self._path)
                except (OSError, UnicodeDecodeError) as err:
                    _LOGGER.error("could not reload API keys from %s: %s", self._path, err)
        return self._records
