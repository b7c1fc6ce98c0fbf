"""Where the personal data of recent texts is, so a conversation's earlier turns are not analysed again.

A chat client sends the whole conversation with every request: at the tenth turn, nine of the ten messages
were analysed already. Each PII replica keeps, for the texts it analysed recently, what the analyzer found:
the entity type, start, end and score of each result. Nothing else:

- the key is an HMAC-SHA256 of the text under a random key made when the replica starts, so the cache holds
  no text and no value, and nothing in it can be tied to a text without having the text;
- the placeholder mapping (values) is never cached: it is made per request from the text the request itself
  carries (engine.mask_texts), as before;
- bounded (``PII_CACHE_ENTRIES``, least recently used out first) and short-lived (``PII_CACHE_TTL_SECONDS``);
  0 entries turns it off.

The results are those of the replica's own analyzer, whose options are fixed for its life, so a text's results
do not change while they are cached.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

Found = tuple[tuple[str, int, int, float], ...]  # (entity type, start, end, score) per result


class AnalysisCache:
    """Analysis results by text (see the module's docstring). Thread-safe."""

    def __init__(self, entries: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.entries = max(0, entries)
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._found: OrderedDict[bytes, tuple[float, Found]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._found)

    def __repr__(self) -> str:
        return f"AnalysisCache({len(self._found)}/{self.entries} entries, ttl {self.ttl_seconds:g} s)"

    def _digest(self, text: str) -> bytes:
        return hmac.new(self._key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def get(self, text: str) -> list[Any] | None:
        """Fresh ``RecognizerResult`` objects for ``text`` if it was analysed within the TTL, else None."""
        if not self.entries:
            return None
        digest = self._digest(text)
        now = self._clock()
        with self._lock:
            entry = self._found.get(digest)
            if entry is None or now - entry[0] > self.ttl_seconds:
                if entry is not None:
                    del self._found[digest]
                self.misses += 1
                return None
            self._found.move_to_end(digest)
            self.hits += 1
        from presidio_analyzer import RecognizerResult

        return [RecognizerResult(kind, start, end, score) for kind, start, end, score in entry[1]]

    def put(self, text: str, results: list[Any]) -> None:
        """Remember where ``results`` (``RecognizerResult`` objects for ``text``) are."""
        if not self.entries:
            return
        found: Found = tuple((r.entity_type, r.start, r.end, r.score) for r in results)
        digest = self._digest(text)
        with self._lock:
            self._found[digest] = (self._clock(), found)
            self._found.move_to_end(digest)
            while len(self._found) > self.entries:
                self._found.popitem(last=False)
