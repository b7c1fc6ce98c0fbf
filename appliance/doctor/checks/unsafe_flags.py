"""Settings that are unsafe in production: authentication disabled, PII forwarded unmasked on errors."""

from __future__ import annotations

from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class UnsafeFlags(Check):
    slug = "unsafe-flags"
    title = "unsafe settings"

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        s = ctx.config.settings
        findings = []
        if not s.auth_enabled:
            findings.append(self.problem(Level.WARNING, "AUTH_ENABLED=true", "false: anyone who reaches the port can "
                                         "use the models", "set AUTH_ENABLED=true and create keys: python -m appliance "
                                         "keys create NAME", title="authentication disabled"))  # fmt: skip
        if s.pii_enabled and s.pii_fail_open:
            findings.append(self.problem(Level.WARNING, "PII_FAIL_OPEN=false", "true: unmasked text reaches the model "
                                         "when the analyzer fails", "set PII_FAIL_OPEN=false", title="PII fail-open"))  # fmt: skip
        return findings or [self.ok(found="auth on; PII fail-closed", expected="no unsafe flag")]
