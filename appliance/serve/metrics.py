"""The ingress's own metrics, recorded through Ray's metrics API.

Ray aggregates them from every ingress replica and exports them, with Ray's and vLLM's own metrics, on the
node's Prometheus endpoint (``ray start --metrics-export-port``), where Prometheus scrapes them under the
names ``ray_appliance_*``. Using Ray's exporter rather than a per-replica ``/metrics`` route keeps the
numbers whole when the ingress has several replicas.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]
GAUGE_REFRESH_S = 10.0  # well inside the ~30 s after which Ray's export drops a gauge series not set again
TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30]


class Metrics(Protocol):
    def request_done(
        self,
        *,
        model: str,
        status: int,
        key: str,
        latency: float,
        ttft: float | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
    ) -> None: ...

    def in_flight(self, model: str, delta: int) -> None: ...

    def auth_failure(self, reason: str) -> None: ...

    def budget_refused(self, key: str, limit: str) -> None: ...  # limit: BudgetError.limit (a fixed string)

    def audit_refused(self) -> None: ...  # a request refused, or an answer withheld, for want of its audit line


class RayMetrics:
    """:class:`Metrics` on ``ray.util.metrics``; create it inside a Ray worker (an ingress replica)."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        self._requests = Counter(
            "appliance_requests", "API requests by model, status and key name.", tag_keys=("model", "status", "key")
        )
        self._latency = Histogram(
            "appliance_request_latency_seconds",
            "Request latency, first byte in to last out.",
            boundaries=LATENCY_BUCKETS,
            tag_keys=("model",),
        )
        self._ttft = Histogram(
            "appliance_time_to_first_token_seconds",
            "Time to the first streamed token.",
            boundaries=TTFT_BUCKETS,
            tag_keys=("model",),
        )
        self._prompt_tokens = Counter(
            "appliance_prompt_tokens", "Prompt tokens by model and key name.", tag_keys=("model", "key")
        )
        self._completion_tokens = Counter(
            "appliance_completion_tokens", "Completion tokens by model and key name.", tag_keys=("model", "key")
        )
        self._in_flight = Gauge(
            "appliance_requests_in_flight", "Generation requests being served now.", tag_keys=("model",)
        )
        self._auth_failures = Counter(
            "appliance_auth_failures", "Requests refused for a missing or bad API key.", tag_keys=("reason",)
        )
        self._budget_refusals = Counter(
            "appliance_budget_refusals",
            "Requests refused by a key's budget, by key name and limit (rpm, tpm, tokens_per_day, too_large).",
            tag_keys=("key", "limit"),
        )
        self._audit_refusals = Counter(
            "appliance_audit_refusals",
            "Requests refused, and answers withheld, because their audit line could not be written.",
        )
        self._flight: dict[str, int] = {}
        self._flight_lock = threading.Lock()
        self._refresher: threading.Thread | None = None

    def request_done(
        self,
        *,
        model: str,
        status: int,
        key: str,
        latency: float,
        ttft: float | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
    ) -> None:
        self._requests.inc(1, {"model": model, "status": str(status), "key": key})
        self._latency.observe(latency, {"model": model})
        if ttft is not None:
            self._ttft.observe(ttft, {"model": model})
        if prompt_tokens:
            self._prompt_tokens.inc(prompt_tokens, {"model": model, "key": key})
        if completion_tokens:
            self._completion_tokens.inc(completion_tokens, {"model": model, "key": key})

    def in_flight(self, model: str, delta: int) -> None:
        with self._flight_lock:
            self._flight[model] = self._flight.get(model, 0) + delta
            self._in_flight.set(self._flight[model], {"model": model})
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._keep_set, name="in-flight-gauge", daemon=True)
                self._refresher.start()

    def refresh(self) -> None:
        """Set every in-flight gauge again: Ray's export drops a gauge series ~30 s after its last set (measured,
        ray 2.60), and an idle model's panel would show no data instead of 0."""
        with self._flight_lock:
            for model, count in self._flight.items():
                self._in_flight.set(count, {"model": model})

    def _keep_set(self) -> None:
        while True:
            time.sleep(GAUGE_REFRESH_S)
            self.refresh()

    def auth_failure(self, reason: str) -> None:
        self._auth_failures.inc(1, {"reason": reason})

    def budget_refused(self, key: str, limit: str) -> None:
        self._budget_refusals.inc(1, {"key": key, "limit": limit})

    def audit_refused(self) -> None:
        self._audit_refusals.inc(1)


class ServingGauge:
    """``ray_appliance_model_serving{model}``: 1 while the ingress sends a model's requests to it, 0 while it
    answers them 503 (engine dead, replica gone with its node, not ready); set from the first time the model
    served (a model still loading has no series: that is ModelNotReady's, from Serve's status)."""

    def __init__(self) -> None:
        from ray.util.metrics import Gauge

        self._gauge = Gauge(
            "appliance_model_serving",
            "1 while the ingress sends the model's requests to it, 0 while it answers them 503 (after it served once).",
            tag_keys=("model",),
        )

    def set(self, model: str, serving: bool) -> None:
        self._gauge.set(1 if serving else 0, {"model": model})
