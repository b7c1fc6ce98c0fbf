"""With the stack up: the serving path answers /health/ready with 200 (through nginx, as the host reaches it)."""

from __future__ import annotations

from appliance.doctor import probes
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class HealthReady(Check):
    slug = "health-ready"
    title = "/health/ready"
    needs_stack = True

    def run(self, ctx: DoctorContext) -> list[Finding]:
        endpoint = ctx.health_endpoint()
        if endpoint is None:
            return [
                self.problem(
                    Level.INFO,
                    "a valid configuration (where nginx listens)",
                    "none",
                    "fix the configuration first (see the config check)",
                )
            ]
        try:
            status, body = probes.http_get_json(
                endpoint.url, timeout=5.0, context=endpoint.context, headers=endpoint.headers
            )
        except OSError as err:
            return [
                self.problem(
                    Level.ERROR,
                    f"200 from {endpoint.url}",
                    f"no answer ({err})",
                    "is the stack up? python -m appliance status; docker compose logs serve",
                )
            ]
        if status != 200:
            detail = body if isinstance(body, str) else str(body)[:200]
            return [
                self.problem(
                    Level.ERROR,
                    f"200 from {endpoint.url}",
                    f"{status}: {detail}",
                    "models may still be loading; else docker compose logs serve",
                )
            ]
        return [self.ok(found="200", expected="200")]
