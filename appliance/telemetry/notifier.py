"""What the supervisor reports, fanned out to its Prometheus metrics and (when configured) Datadog."""

from __future__ import annotations

import logging

from appliance.registry.states import Status
from appliance.registry.store import Event
from appliance.telemetry.dogstatsd import DatadogSink
from appliance.telemetry.supervisor_metrics import SupervisorMetrics

_LOGGER = logging.getLogger(__name__)


class SupervisorNotifier:
    """Implements the watchdog's notifier and the jobs' reporting hooks."""

    def __init__(self, metrics: SupervisorMetrics, datadog: DatadogSink | None = None) -> None:
        self.metrics = metrics
        self.datadog = datadog

    def restarted(self, service: str, reason: str) -> None:
        self.metrics.restarts.labels(service=service).inc()
        if self.datadog:
            self.datadog.increment("restarts", [f"compose_service:{service}"])
            self.datadog.event(
                f"appliance: {service} restarted",
                f"The watchdog restarted {service} ({reason}).",
                alert_type="warning",
                tags=[f"compose_service:{service}"],
            )

    def gave_up(self, service: str, why: str) -> None:
        self.metrics.giveups.labels(service=service).inc()
        self.metrics.service_healthy.labels(service=service).set(0)
        if self.datadog:
            self.datadog.increment("giveups", [f"compose_service:{service}"])
            self.datadog.event(
                f"appliance: watchdog gave up on {service}",
                f"{why}. See docs/runbooks/watchdog-gave-up.md.",
                alert_type="error",
                tags=[f"compose_service:{service}"],
            )

    def service_health(self, service: str, healthy: bool) -> None:
        self.metrics.service_healthy.labels(service=service).set(1 if healthy else 0)

    def check_result(self, check: str, ok: bool) -> None:
        self.metrics.check_ok.labels(check=check).set(1 if ok else 0)

    def certificate(self, days_left: float | None) -> None:
        if days_left is not None:
            self.metrics.cert_days_left.set(days_left)
            if self.datadog:
                self.datadog.gauge("certificate.days_left", days_left)

    def renewal(self, ok: bool, reason: str) -> None:
        result = "success" if ok else "failure"
        self.metrics.renewals.labels(result=result).inc()
        self.metrics.last_renewal_ok.set(1 if ok else 0)
        if self.datadog:
            self.datadog.increment("certificate.renewals", [f"result:{result}"])
            if not ok:
                self.datadog.event("appliance: certificate renewal failed", reason, alert_type="error")

    def rotated(self, log: str, size: int) -> None:
        self.metrics.rotated_bytes.labels(log=log).inc(size)
        if self.datadog:
            self.datadog.increment("log.rotated_bytes", [f"log:{log}"])

    def model_transition(self, event: Event) -> None:
        """One state change of a model revision, as the registry's history recorded it."""
        status = event.to_status.value
        was = event.from_status.value if event.from_status else "new"
        line = f"model {event.model_id} ({event.environment.value}) entry {event.entry_id}: {was} -> {status}"
        level = logging.WARNING if event.to_status is Status.FAILED else logging.INFO
        _LOGGER.log(level, "%s: %s", line, event.reason)
        if self.datadog:
            tags = [f"model:{event.model_id}", f"environment:{event.environment.value}", f"status:{status}"]
            self.datadog.increment("model.transitions", tags)
            alert = {Status.FAILED: "error", Status.READY: "success"}.get(event.to_status, "info")
            title = f"appliance: model {event.model_id} ({event.environment.value}) {status}"
            self.datadog.event(title, f"{line}: {event.reason}", alert_type=alert, tags=tags)

    def backup(self, ok: bool, size: int | None) -> None:
        self.metrics.backup_last_ok.set(1 if ok else 0)
        if ok:
            self.metrics.backup_last_success.set_to_current_time()
            if size is not None:
                self.metrics.backup_size.set(size)
        if self.datadog:
            self.datadog.increment("backups", [f"result:{'success' if ok else 'failure'}"])
            if not ok:
                self.datadog.event(
                    "appliance: nightly backup failed", "See docs/runbooks/backup-failed.md.", alert_type="error"
                )
