"""Ports 80/443 (HTTP_PORT / HTTPS_PORT) are free, or held by the appliance's own nginx."""

from __future__ import annotations

import errno

from appliance.docker.errors import ApplianceDockerError
from appliance.doctor import probes
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


def ours_publishing(ctx: DoctorContext) -> set[int]:
    """Host ports the project's nginx container publishes (empty when Docker cannot tell)."""
    assert ctx.config is not None
    try:
        with probes.open_engine(ctx.docker_host, timeout=1.0) as engine:
            containers = engine.project_containers(ctx.config.settings.compose_project_name)
    except ApplianceDockerError:
        return set()
    return {port for c in containers if c.service == "nginx" and c.status == "running" for port in c.published_ports}


class Ports(Check):
    slug = "ports"
    title = "HTTP/HTTPS ports free"

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        s = ctx.config.settings
        findings, ours = [], None
        for label, port in (("HTTP_PORT", s.http_port), ("HTTPS_PORT", s.https_port)):
            error = probes.can_bind(s.bind_address, port)
            if error is None:
                findings.append(self.ok(found=f"{port} free", expected=f"{label}={port} free or ours"))
                continue
            if error.errno == errno.EADDRINUSE:
                ours = ours_publishing(ctx) if ours is None else ours
                if port in ours:
                    findings.append(
                        self.ok(found=f"{port} held by the appliance's nginx", expected=f"{label} free or ours")
                    )
                    continue
                findings.append(
                    self.problem(
                        Level.ERROR,
                        f"{label}={port} free",
                        "in use by another program",
                        f"find it: sudo ss -ltnp 'sport = :{port}'; stop it or set {label}",
                    )
                )
            else:
                findings.append(
                    self.problem(
                        Level.WARNING,
                        f"{label}={port} bindable",
                        error.strerror or str(error),
                        "run as root or allow low ports (net.ipv4.ip_unprivileged_port_start)",
                    )
                )
        return findings
