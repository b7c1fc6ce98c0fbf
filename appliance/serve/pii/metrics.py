"""The PII metrics, recorded through ``ray.util.metrics`` (exported by Ray as ``ray_pii_*``).

The names are a contract with the dashboards and alerts: ``pii_scan_latency_seconds``,
``pii_entities_detected_total{entity_type}``, ``pii_restore_latency_seconds``, ``pii_service_queue_depth``,
``pii_failures_total{reason}``, ``pii_cache_lookups_total{result}`` (``hit`` / ``miss``: texts whose
analysis came from the replica's cache, see cache.py), and ``pii_fast_ner_active`` (1: the replica's fast NER
passed its canary check against spaCy's at load; 0: it differed and the replica runs spaCy's own NER).
"""

from __future__ import annotations

from typing import Protocol

SCAN_BUCKETS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
RESTORE_BUCKETS = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1]


class PiiMetrics(Protocol):
    def scanned(self, seconds: float, counts: dict[str, int]) -> None: ...

    def restored(self, seconds: float) -> None: ...

    def queue_depth(self, depth: int) -> None: ...

    def failure(self, reason: str) -> None: ...

    def cache_lookups(self, hits: int, misses: int) -> None: ...

    def fast_ner(self, active: bool) -> None: ...


class NoMetrics:
    """For code that runs outside Ray (scripts, benchmarks)."""

    def scanned(self, seconds: float, counts: dict[str, int]) -> None:
        pass

    def restored(self, seconds: float) -> None:
        pass

    def queue_depth(self, depth: int) -> None:
        pass

    def failure(self, reason: str) -> None:
        pass

    def cache_lookups(self, hits: int, misses: int) -> None:
        pass

    def fast_ner(self, active: bool) -> None:
        pass


class RayPiiMetrics:
    """:class:`PiiMetrics` on ``ray.util.metrics``; create it inside a Ray worker."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        self._scan = Histogram(
            "pii_scan_latency_seconds", "Time to analyse and mask one request's texts.", boundaries=SCAN_BUCKETS
        )
        self._entities = Counter(
            "pii_entities_detected", "Distinct personal values masked, by entity type.", tag_keys=("entity_type",)
        )
        self._restore = Histogram(
            "pii_restore_latency_seconds", "Time spent restoring values into one response.", boundaries=RESTORE_BUCKETS
        )
        self._queue = Gauge("pii_service_queue_depth", "Mask requests waiting or running in a PII replica.")
        self._failures = Counter("pii_failures", "Requests whose masking failed, by reason.", tag_keys=("reason",))
        self._cache = Counter(
            "pii_cache_lookups", "Texts looked up in a PII replica's analysis cache, by result.", tag_keys=("result",)
        )
        self._fast_ner = Gauge(
            "pii_fast_ner_active",
            "1: the fast NER passed its canary check against spaCy's at "
            "load; 0: it differed, and this replica runs spaCy's own NER.",
        )

    def scanned(self, seconds: float, counts: dict[str, int]) -> None:
        self._scan.observe(seconds)
        for entity_type, count in counts.items():
            self._entities.inc(count, {"entity_type": entity_type})

    def restored(self, seconds: float) -> None:
        self._restore.observe(seconds)

    def queue_depth(self, depth: int) -> None:
        self._queue.set(depth)

    def failure(self, reason: str) -> None:
        self._failures.inc(1, {"reason": reason})

    def cache_lookups(self, hits: int, misses: int) -> None:
        if hits:
            self._cache.inc(hits, {"result": "hit"})
        if misses:
            self._cache.inc(misses, {"result": "miss"})

    def fast_ner(self, active: bool) -> None:
        self._fast_ner.set(1 if active else 0)
