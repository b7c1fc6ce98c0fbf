"""The configuration loads: .env, .secrets and models.yaml are valid (every issue is listed; the unsafe-flags
check shows the warnings about unsafe settings)."""

from __future__ import annotations

from appliance.config.rules import UNSAFE_SETTINGS
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class ConfigValid(Check):
    slug = "config"
    title = "configuration valid"
    in_stack = True
    needs_config = False

    def run(self, ctx: DoctorContext) -> list[Finding]:
        if ctx.config is not None:
            warnings = [
                self.problem(
                    Level.WARNING,
                    "no warnings",
                    f"{issue.location()}: {issue.message}",
                    issue.hint or "see the message",
                )
                for issue in ctx.config.warnings
                if issue.key not in UNSAFE_SETTINGS
            ]
            return warnings or [self.ok(found=f"{ctx.files.env}, {ctx.files.secrets}")]
        return [
            self.problem(
                Level.ERROR if issue.is_error else Level.WARNING,
                "a valid configuration",
                f"{issue.location()}: {issue.message}",
                issue.hint or "fix it, then: python -m appliance validate",
            )
            for issue in ctx.config_issues
        ]
