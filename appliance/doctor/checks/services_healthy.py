"""With the stack up: every service of the compose project is running and healthy."""

from __future__ import annotations

from appliance.doctor.base import Check
from appliance.doctor.checks._stack import project_containers
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class ServicesHealthy(Check):
    slug = "services"
    title = "services running and healthy"
    in_stack = True
    needs_stack = True

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        project = ctx.config.settings.compose_project_name
        containers = project_containers(ctx)
        if containers is None:
            return [
                self.problem(
                    Level.INFO,
                    "the stack's containers",
                    "the Docker Engine did not answer",
                    "see the Docker Engine check",
                )
            ]
        if not containers:
            return [
                self.problem(
                    Level.INFO,
                    f"containers of project {project}",
                    "none: the stack is not up",
                    "python -m appliance up (or --preflight to skip these checks)",
                )
            ]
        findings = []
        for c in sorted(containers, key=lambda c: c.service):
            title = f"service {c.service}"
            state = c.status + (f" ({c.health})" if c.health else "")
            if c.running_and_healthy:
                findings.append(Finding(self.slug, Level.OK, title, "running, healthy", state))
            elif c.status == "running" and c.health == "starting":
                findings.append(
                    Finding(
                        self.slug,
                        Level.INFO,
                        title,
                        "running, healthy",
                        state,
                        "still starting (model loading can take minutes)",
                    )
                )
            elif c.stopped_by_hand:  # restart: unless-stopped brings back a crash, never a manual stop
                found = (
                    f"{state} (exit {c.exit_code}): stopped by hand (docker stop/kill, compose stop), which "
                    "Docker does not restart" + ("" if c.watched else ", and no watchdog watches it")
                )
                findings.append(
                    Finding(
                        self.slug,
                        Level.ERROR,
                        title,
                        "running, healthy",
                        found,
                        f"docker compose -p {project} start {c.service} (or python -m appliance up)",
                    )
                )
            else:
                findings.append(
                    Finding(
                        self.slug,
                        Level.ERROR,
                        title,
                        "running, healthy",
                        state,
                        f"docker compose -p {project} logs {c.service}; then docker compose -p "
                        f"{project} up -d {c.service}",
                    )
                )
        return findings
