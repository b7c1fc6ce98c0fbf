"""With the stack up: restarts per service (Docker's own and the watchdog's) stay low."""

from __future__ import annotations

import json
from pathlib import Path

from appliance.doctor.base import Check
from appliance.doctor.checks._stack import project_containers
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level

MAX_RESTARTS = 3


class RestartCounts(Check):
    slug = "restarts"
    title = "restart counts"
    in_stack = True
    needs_stack = True

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        containers = project_containers(ctx) or []
        watchdog = _watchdog_state(Path(ctx.config.settings.supervisor_state_file))
        findings = []
        for c in sorted(containers, key=lambda c: c.service):
            by_watchdog = len(watchdog.get(c.service, {}).get("restarts", []))
            gave_up = watchdog.get(c.service, {}).get("gave_up", False)
            total = c.restart_count + by_watchdog
            if gave_up:
                findings.append(self.problem(Level.ERROR, "the watchdog watching", f"{c.service}: it gave up",
                                             "see docs/runbooks/watchdog-gave-up.md", title=f"restarts: {c.service}"))  # fmt: skip
            elif total > MAX_RESTARTS:
                findings.append(self.problem(Level.WARNING, f"<= {MAX_RESTARTS} restarts", f"{total} restarts",
                                             f"look at its logs: docker compose logs {c.service}",
                                             title=f"restarts: {c.service}"))  # fmt: skip
        return findings or [self.ok(found=f"{len(containers)} container(s), few restarts", expected=f"<= {MAX_RESTARTS}")]


def _watchdog_state(path: Path) -> dict[str, dict]:
    try:
        return dict(json.loads(path.read_text()).get("services", {}))
    except (OSError, ValueError):
        return {}
