"""The API keys the ingress accepts, reloaded from the key file when it changes.

The file is ``.secrets`` outside the stack, or in the stack the hash-only copy ``make up`` and ``keys
create|revoke`` render (``data/run/serve/api_keys``). ``keys create`` / ``keys revoke`` take effect within
``reload_interval`` seconds without a restart. A file that is gone means no key at all (every request is
refused) until it comes back; a file that is there but unreadable or not UTF-8 keeps the last good set in
force. Either is logged once, without values.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from appliance.config.dotenv import parse_dotenv
from appliance.config.secrets import ApiKeyRecord, parse_api_keys

_LOGGER = logging.getLogger(__name__)

Stamp = tuple[int, int, int, int]  # inode, mtime and ctime in ns (ctime: a chmod), size
MISSING: Stamp = (-1, -1, -1, -1)


def read_key_records(path: Path) -> tuple[ApiKeyRecord, ...]:
    parsed = parse_dotenv(path.read_text(encoding="utf-8"), str(path), secret=True)
    records, failures = parse_api_keys((key, entry.value) for key, entry in parsed.entries.items())
    for key, err in failures:
        _LOGGER.error(
            "%s line %s: %s is malformed (expected %s); ignored", path, parsed.line_of(key), key, err.expected
        )
    return tuple(records)


class KeyStore:
    def __init__(
        self, records: tuple[ApiKeyRecord, ...], path: Path | None = None, *, reload_interval: float = 1.0
    ) -> None:
        self._records = records
        self._path = path
        self._interval = reload_interval
        self._checked = float("-inf")  # the first call looks at the file
        self._stamp: Stamp | None = None

    def _file_stamp(self) -> Stamp | None:
        """The file's identity and version; MISSING when it is gone, None when it cannot be examined."""
        if self._path is None:
            return None
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return MISSING
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)

    def records(self) -> tuple[ApiKeyRecord, ...]:
        now = time.monotonic()
        if self._path is not None and now - self._checked >= self._interval:
            self._checked = now
            stamp = self._file_stamp()
            if stamp is not None and stamp != self._stamp:
                self._reload(self._path, stamp)
        return self._records

    def _reload(self, path: Path, stamp: Stamp) -> None:
        if stamp == MISSING:
            self._records, self._stamp = (), stamp
            _LOGGER.error("the API key file %s is gone: every key is refused until it is back", path)
            return
        try:
            self._records = read_key_records(path)
        except FileNotFoundError:  # removed between stat and read: the next check sees it gone
            return
        except (OSError, UnicodeDecodeError) as err:
            self._stamp = stamp  # logged once per version of the file, not on every check
            _LOGGER.error(
                "could not reload API keys from %s (%s): the last good keys stay in force", path, type(err).__name__
            )
            return
        self._stamp = stamp
        _LOGGER.info("reloaded %d API key(s) from %s", len(self._records), path)
