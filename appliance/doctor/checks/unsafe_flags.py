"""Settings that are unsafe in production: authentication disabled, PII forwarded unmasked on errors.

The rule is the config's own (``appliance.config.rules``, UNSAFE_SETTINGS); this check shows its warnings.
"""

from __future__ import annotations

from appliance.config.rules import UNSAFE_SETTINGS
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level

TITLES = {"AUTH_ENABLED": "authentication disabled", "PII_FAIL_OPEN": "PII fail-open"}


class UnsafeFlags(Check):
    slug = "unsafe-flags"
    title = "unsafe settings"
    in_stack = True

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        findings = [
            self.problem(
                Level.WARNING,
                f"a safe {issue.key}",
                f"{issue.location()}: {issue.message}",
                issue.hint,
                title=TITLES.get(issue.key, issue.key),
            )
            for issue in ctx.config.warnings
            if issue.key in UNSAFE_SETTINGS
        ]
        return findings or [self.ok(found="auth on; PII fail-closed", expected="no unsafe flag")]
