"""With the stack up: every Prometheus scrape target is up (asked through nginx with the dashboard login)."""

from __future__ import annotations

from appliance.doctor import probes
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class PrometheusTargets(Check):
    slug = "prometheus-targets"
    title = "Prometheus targets up"
    needs_stack = True

    def run(self, ctx: DoctorContext) -> list[Finding]:
        endpoint = ctx.prometheus_endpoint()
        if endpoint is None:
            return [
                self.problem(
                    Level.INFO,
                    "Prometheus published at /prometheus/ behind nginx",
                    "not published (no valid configuration, or DASHBOARDS_ENABLED=false)",
                    "pass --prometheus-url to check it from where it is reachable",
                )
            ]
        url = endpoint.url + "/api/v1/targets?state=active"
        try:
            status, body = probes.http_get_json(url, timeout=5.0, context=endpoint.context, headers=endpoint.headers)
        except OSError as err:
            return [
                self.problem(
                    Level.WARNING,
                    f"Prometheus at {endpoint.url}",
                    f"no answer ({err})",
                    "docker compose logs prometheus",
                )
            ]
        if status != 200 or not isinstance(body, dict):
            return [self.problem(Level.WARNING, "the targets API", f"HTTP {status}", "docker compose logs prometheus")]
        targets = body.get("data", {}).get("activeTargets", [])
        down = [t for t in targets if t.get("health") != "up"]
        if down:
            return [
                self.problem(
                    Level.ERROR,
                    "every target up",
                    f"{t.get('labels', {}).get('job', '?')} "
                    f"({t.get('scrapeUrl', '?')}): {t.get('health')} — {t.get('lastError', '')}",
                    "check that service: docker compose ps; its logs",
                    title="Prometheus target down",
                )
                for t in down
            ]
        return [self.ok(found=f"{len(targets)} target(s) up", expected="all up")]
