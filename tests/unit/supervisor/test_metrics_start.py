"""A fresh supervisor's metrics say nothing has failed: no alert fires on a stack that has done nothing yet."""

from appliance.telemetry.notifier import SupervisorNotifier
from appliance.telemetry.supervisor_metrics import SupervisorMetrics


def _value(metrics: SupervisorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_last_renewal_ok_starts_ok_and_follows_the_attempts() -> None:
    metrics = SupervisorMetrics()
    assert _value(metrics, "appliance_certificate_last_renewal_ok") == 1.0  # CertificateRenewalFailed: == 0
    assert _value(metrics, "appliance_certificate_renewals_total", result="failure") is None  # no attempt counted
    notifier = SupervisorNotifier(metrics)
    notifier.renewal(False, "acme server unreachable")
    assert _value(metrics, "appliance_certificate_last_renewal_ok") == 0.0
    notifier.renewal(True, "")
    assert _value(metrics, "appliance_certificate_last_renewal_ok") == 1.0


def test_backup_last_ok_starts_ok_and_follows_the_nightly_runs() -> None:
    metrics = SupervisorMetrics()
    assert _value(metrics, "appliance_backup_last_ok") == 1.0  # BackupFailed: == 0
    notifier = SupervisorNotifier(metrics)
    notifier.backup(False, None)
    assert _value(metrics, "appliance_backup_last_ok") == 0.0
    assert _value(metrics, "appliance_backup_last_success_timestamp_seconds") == 0.0
    notifier.backup(True, 1234)
    assert _value(metrics, "appliance_backup_last_ok") == 1.0
    assert _value(metrics, "appliance_backup_size_bytes") == 1234.0
    assert (_value(metrics, "appliance_backup_last_success_timestamp_seconds") or 0) > 0
