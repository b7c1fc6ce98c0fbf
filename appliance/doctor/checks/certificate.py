"""The TLS certificate's days left: warning under 14, error under 3."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography import x509

from appliance.config.settings import Settings
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level

WARN_DAYS = 14
FAIL_DAYS = 3
CERTS_ROOT = Path("data/certs")


def certificate_path(settings: Settings) -> Path | None:
    """TLS_CERT_PATH, else the live pair the certs module keeps under data/certs/live/<name>/."""
    if settings.tls_cert_path:
        return Path(settings.tls_cert_path)
    live = sorted((CERTS_ROOT / "live").glob("*/fullchain.pem"))
    return live[0] if live else None


def days_left(path: Path, now: datetime) -> float:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return (cert.not_valid_after_utc - now).total_seconds() / 86400


class Certificate(Check):
    slug = "certificate"
    title = "certificate days left"

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        path = certificate_path(ctx.config.settings)
        if path is None or not path.exists():
            return [self.problem(Level.INFO, "a certificate", "none yet (made on the first make up)",
                                 "python -m appliance up creates or requests it")]  # fmt: skip
        try:
            left = days_left(path, ctx.now)
        except ValueError as err:
            return [self.problem(Level.ERROR, "a PEM certificate", f"{path}: unreadable ({err})",
                                 "replace it (TLS_MODE=provided: TLS_CERT_PATH) or delete it to have it remade")]  # fmt: skip
        expected = f">= {WARN_DAYS} days left"
        fix = "python -m appliance certs renew (see docs/runbooks/certificate-expiring-soon.md)"
        if left < FAIL_DAYS:
            return [self.problem(Level.ERROR, expected, f"{left:.1f} days left ({path})", fix)]
        if left < WARN_DAYS:
            return [self.problem(Level.WARNING, expected, f"{left:.1f} days left ({path})", fix)]
        return [self.ok(found=f"{left:.0f} days left", expected=expected)]
