"""The scheduled jobs: renewal (renew injected) reports metrics; the scheduler keeps going after a failure."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import generate_latest

from appliance.supervisor.jobs import RenewalJob, cert_days_left, every
from appliance.telemetry.notifier import SupervisorNotifier
from appliance.telemetry.supervisor_metrics import SupervisorMetrics


@dataclass
class Result:
    ok: bool
    reason: str
    renewed: bool = False


def write_cert(path: Path, days: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appliance.test")])
    now = datetime.now(tz=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_cert_days_left(tmp_path: Path) -> None:
    write_cert(tmp_path / "c.pem", 30)
    assert 29.9 < (cert_days_left(tmp_path / "c.pem") or 0) <= 30
    assert cert_days_left(tmp_path / "missing.pem") is None


def test_renewal_job_reports_failure_and_success(tmp_path: Path) -> None:
    write_cert(tmp_path / "c.pem", 10)
    metrics = SupervisorMetrics()
    calls: list[dict] = []
    outcomes = [
        Result(False, "ACME server unreachable"),
        Result(True, "renewed", renewed=True),
        Result(True, "not due"),
    ]

    def renew(config, **kwargs):
        calls.append(kwargs)
        kwargs["alert"]("renewal", "text")  # the alert callable is usable
        return outcomes[len(calls) - 1]

    reload = lambda: None  # noqa: E731
    job = RenewalJob(
        object(), SupervisorNotifier(metrics), cert_path=tmp_path / "c.pem", renew=renew, reload_nginx=reload
    )
    for _ in range(3):
        asyncio.run(job())
    text = generate_latest(metrics.registry).decode()
    assert 'appliance_certificate_renewals_total{result="failure"} 1.0' in text
    assert 'appliance_certificate_renewals_total{result="success"} 1.0' in text  # "not due" is not counted
    assert "appliance_certificate_last_renewal_ok 1.0" in text
    assert calls[0]["reload_nginx"] is reload and "test_nginx" not in calls[0]
    assert metrics.cert_days_left._value.get() < 10


def test_scheduler_survives_a_failing_run() -> None:
    runs: list[int] = []

    async def scenario() -> None:
        stop = asyncio.Event()

        async def job() -> None:
            runs.append(1)
            if len(runs) == 3:
                stop.set()
            raise RuntimeError("this run failed")

        await asyncio.wait_for(every(0.01, job, stop, jitter=0.5), timeout=30)

    asyncio.run(scenario())
    assert len(runs) == 3
