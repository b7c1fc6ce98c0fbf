"""With TLS_MODE=acme, an ACME contact e-mail is set."""

from __future__ import annotations

from appliance.config.settings import TlsMode
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class AcmeEmail(Check):
    slug = "acme-email"
    title = "ACME e-mail set"

    def applies(self, ctx: DoctorContext) -> bool:
        return ctx.config is not None and ctx.config.settings.tls_mode == TlsMode.ACME

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        email = ctx.config.settings.acme_email
        if not email:
            return [self.problem(Level.ERROR, "ACME_EMAIL set", "empty", "set ACME_EMAIL=you@example.com in .env")]
        return [self.ok(found=email, expected="an e-mail address")]
