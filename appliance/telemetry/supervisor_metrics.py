"""The supervisor's own Prometheus metrics (names are a contract with prometheus/rules and the dashboards)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

_LOGGER = logging.getLogger(__name__)


class SupervisorMetrics:
    """One registry per supervisor (tests make their own); ``serve(port)`` exposes it on /metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.restarts = Counter(
            "appliance_supervisor_restarts", "Restarts done by the watchdog.", ["service"], registry=r
        )
        self.giveups = Counter(
            "appliance_supervisor_giveups", "Services the watchdog gave up on.", ["service"], registry=r
        )
        self.service_healthy = Gauge(
            "appliance_supervisor_service_healthy",
            "1 when the service's container is running and healthy.",
            ["service"],
            registry=r,
        )
        self.check_ok = Gauge(
            "appliance_supervisor_check_ok", "Doctor check results (1 ok, 0 not).", ["check"], registry=r
        )
        self.cert_days_left = Gauge(
            "appliance_certificate_days_left", "Days until the TLS certificate expires.", registry=r
        )
        self.renewals = Counter(
            "appliance_certificate_renewals", "Certificate renewal attempts.", ["result"], registry=r
        )
        self.last_renewal_ok = Gauge(
            "appliance_certificate_last_renewal_ok",
            "0 when the last renewal attempt failed, else 1 (also before any attempt).",
            registry=r,
        )
        self.last_renewal_ok.set(1)  # nothing has failed yet: a fresh stack must not fire CertificateRenewalFailed
        self.rotated_bytes = Counter(
            "appliance_log_rotated_bytes", "Bytes moved out of live logs.", ["log"], registry=r
        )
        self.backup_last_ok = Gauge(
            "appliance_backup_last_ok",
            "0 when the last nightly backup failed, else 1 (also before any backup).",
            registry=r,
        )
        self.backup_last_ok.set(1)  # nothing has failed yet: a fresh stack must not fire BackupFailed
        self.backup_last_success = Gauge(
            "appliance_backup_last_success_timestamp_seconds",
            "When the last backup archive was written (Unix time).",
            registry=r,
        )
        self.backup_size = Gauge("appliance_backup_size_bytes", "Size of the last backup archive.", registry=r)
        self.up = Gauge("appliance_supervisor_up", "1 while the supervisor runs.", registry=r)
        self.up.set(1)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
        _LOGGER.info("supervisor metrics on %s:%d/metrics", addr, port)
