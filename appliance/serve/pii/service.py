"""PIIService: the Ray Serve deployment that holds Presidio and masks a request's texts.

One analyzer and one anonymizer per replica, built when the replica starts. Analysis is CPU work: it runs in
the replica's own worker thread (one at a time: spaCy and the GIL gain nothing from more), never on an
event loop, and never in the ingress process. The builder gives it its own replica count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from appliance.cluster.placement import head_only
from appliance.serve.pii.cache import AnalysisCache
from appliance.serve.pii.engine import MaskResult, PiiOptions, build_engines, mask_texts
from appliance.serve.pii.metrics import NoMetrics, PiiMetrics

_LOGGER = logging.getLogger(__name__)

DEPLOYMENT_NAME = "PIIService"
# Requests one replica accepts at once; more wait in Serve's queue (and count against the caller's timeout).
MAX_ONGOING = 16


class PIIService:
    """Serve deployment class (see :func:`deployment_options`); also usable directly, without Ray."""

    def __init__(self, options: PiiOptions, *, ray_metrics: bool = True) -> None:
        self.options = options
        self._analyzer, self._anonymizer = build_engines(options)
        self.cache = AnalysisCache(options.cache_entries, options.cache_ttl_seconds)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pii")
        self._waiting = 0
        self._metrics: PiiMetrics
        if ray_metrics:
            from appliance.serve.pii.metrics import RayPiiMetrics

            self._metrics = RayPiiMetrics()
        else:
            self._metrics = NoMetrics()
        fast_ner = getattr(self._analyzer.nlp_engine, "fast_ner_active", None)
        if fast_ner is not None:
            self._metrics.fast_ner(fast_ner)
        self.mask_sync(["warm-up: John Smith, john@example.com"], cached=False)  # pays spaCy's lazy set-up

    def mask_sync(self, texts: list[str], cached: bool = True) -> MaskResult:
        """Mask ``texts``; ``cached``: reuse (and keep) the analysis of recently seen texts."""
        return mask_texts(self._analyzer, self._anonymizer, texts, self.options, self.cache if cached else None)

    async def mask(self, texts: list[str]) -> dict[str, Any]:
        """Mask ``texts`` (every text of one request). Returns plain data: texts, originals, counts."""
        self._waiting += 1
        self._metrics.queue_depth(self._waiting)
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            result, hits, misses = await loop.run_in_executor(self._executor, self._mask_counted, list(texts))
        finally:
            self._waiting -= 1
            self._metrics.queue_depth(self._waiting)
        self._metrics.scanned(time.perf_counter() - started, result.counts)
        self._metrics.cache_lookups(hits, misses)
        return {"texts": result.texts, "originals": result.originals, "counts": result.counts}

    def _mask_counted(self, texts: list[str]) -> tuple[MaskResult, int, int]:
        """:meth:`mask_sync` with this call's cache hits and misses. Counted in the worker thread, which runs
        one call at a time: counted around the await, calls waiting side by side would count each other."""
        hits, misses = self.cache.hits, self.cache.misses
        result = self.mask_sync(texts)
        return result, self.cache.hits - hits, self.cache.misses - misses

    async def check_health(self) -> None:
        """Serve's health check: the engines answer on a tiny text (analysed each time, never from the cache)."""
        loop = asyncio.get_running_loop()
        check = loop.run_in_executor(self._executor, self.mask_sync, ["health: Jane Doe"], False)
        await asyncio.wait_for(check, timeout=30)


def deployment_options(options: PiiOptions) -> dict[str, Any]:
    return {
        "name": DEPLOYMENT_NAME,
        "num_replicas": options.replicas,
        "max_ongoing_requests": MAX_ONGOING,
        "ray_actor_options": head_only({"num_cpus": 1}, options.head_only),
        "health_check_period_s": 30,
        "health_check_timeout_s": 60,
    }


def build_deployment(options: PiiOptions) -> Any:
    """The bound Serve deployment (imports Ray)."""
    from ray import serve

    return serve.deployment(PIIService, **deployment_options(options)).bind(options)  # type: ignore[attr-defined]  # as in builder.py
