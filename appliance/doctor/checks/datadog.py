"""Whether the Datadog agent will run: it does only when DATADOG_API_KEY is set in .secrets (compose profile)."""

from __future__ import annotations

from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class DatadogAgent(Check):
    slug = "datadog"
    title = "Datadog agent"

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        settings = ctx.config.settings
        if ctx.config.secrets.datadog_api_key:
            tags = ",".join(settings.datadog_tags) or "none"
            return [
                self.ok(
                    found=f"on: site {settings.datadog_site}, env {settings.datadog_env}, extra tags {tags}",
                    expected="on when DATADOG_API_KEY is set",
                )
            ]
        return [
            self.problem(
                Level.INFO,
                "on when DATADOG_API_KEY is set",
                "off: DATADOG_API_KEY is empty in .secrets",
                "to ship metrics, events and logs to Datadog set DATADOG_API_KEY (and DATADOG_SITE)",
            )
        ]
