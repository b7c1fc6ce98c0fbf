"""With the stack up: restarts per service (Docker's own and the watchdog's) stay low."""

from __future__ import annotations

from pathlib import Path

from appliance.doctor.base import Check
from appliance.doctor.checks._stack import project_containers
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level
from appliance.supervisor.state import StateStore

MAX_RESTARTS = 3


class RestartCounts(Check):
    slug = "restarts"
    title = "restart counts"
    in_stack = True
    needs_stack = True

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        containers = project_containers(ctx) or []
        watchdog = StateStore(Path(ctx.config.settings.supervisor_state_file)).services  # read only: never saved
        findings = []
        for c in sorted(containers, key=lambda c: c.service):
            record = watchdog.get(c.service)
            total = c.restart_count + (len(record.restarts) if record else 0)
            if record and record.gave_up:
                findings.append(
                    self.problem(
                        Level.ERROR,
                        "the watchdog watching",
                        f"{c.service}: it gave up",
                        "see docs/runbooks/watchdog-gave-up.md",
                        title=f"restarts: {c.service}",
                    )
                )
            elif total > MAX_RESTARTS:
                findings.append(
                    self.problem(
                        Level.WARNING,
                        f"<= {MAX_RESTARTS} restarts",
                        f"{total} restarts",
                        f"look at its logs: docker compose logs {c.service}",
                        title=f"restarts: {c.service}",
                    )
                )
        return findings or [
            self.ok(found=f"{len(containers)} container(s), few restarts", expected=f"<= {MAX_RESTARTS}")
        ]
