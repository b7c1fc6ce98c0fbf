"""The certificate nginx serves: servable (key matches, SAN covers DOMAIN, chain in order, valid now) and its
days left: warning under 14, error under 3."""

from __future__ import annotations

from appliance.certs.errors import CertError
from appliance.certs.inspect import days_left
from appliance.certs.store import CertPaths
from appliance.certs.validate import check_pair
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level

WARN_DAYS = 14
FAIL_DAYS = 3


class Certificate(Check):
    slug = "certificate"
    title = "certificate days left"
    in_stack = True

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        s = ctx.config.settings
        paths = CertPaths(ctx.certs_root)
        cert, key = paths.served_fullchain(s), paths.served_privkey(s)
        if not cert.exists():
            return [
                self.problem(
                    Level.INFO,
                    "a certificate",
                    f"none yet at {cert} (made on the first make up)",
                    "python -m appliance up creates or requests it",
                )
            ]
        try:
            info = check_pair(cert, key, domain=s.domain, now=ctx.now)
        except CertError as err:
            return [
                self.problem(
                    Level.ERROR,
                    "a certificate nginx can serve for this config",
                    str(err),
                    "python -m appliance certs renew --force (TLS_MODE=provided: fix the files at "
                    "TLS_CERT_PATH/TLS_KEY_PATH first)",
                )
            ]
        left = days_left(info, ctx.now)
        expected = f">= {WARN_DAYS} days left"
        fix = "python -m appliance certs renew (see docs/runbooks/certificate-expiring-soon.md)"
        if left < FAIL_DAYS:
            return [self.problem(Level.ERROR, expected, f"{left:.1f} days left ({cert})", fix)]
        if left < WARN_DAYS:
            return [self.problem(Level.WARNING, expected, f"{left:.1f} days left ({cert})", fix)]
        return [self.ok(found=f"{left:.0f} days left ({cert.parent.name})", expected=expected)]
