"""This host's clock agrees with the Docker Engine's (TLS and ACME fail with a wrong clock)."""

from __future__ import annotations

from appliance.docker.errors import ApplianceDockerError
from appliance.docker.model import parse_time
from appliance.doctor import probes
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level

MAX_SKEW_S = 5.0


class ClockSkew(Check):
    slug = "clock"
    title = "clock skew"
    in_stack = True
    needs_config = False

    def run(self, ctx: DoctorContext) -> list[Finding]:
        try:
            info = probes.docker_snapshot(ctx.docker_host)["info"]
        except ApplianceDockerError:
            return [
                self.problem(
                    Level.INFO, "a reference clock", "the Docker Engine did not answer", "see the Docker Engine check"
                )
            ]
        engine_time = parse_time(str(info.get("SystemTime", "")))
        if engine_time is None:
            return [self.problem(Level.INFO, "a reference clock", "docker info has no SystemTime", "")]
        skew = abs((engine_time - ctx.now).total_seconds())
        if skew > MAX_SKEW_S:
            return [
                self.problem(
                    Level.WARNING,
                    f"<= {MAX_SKEW_S:g} s apart",
                    f"{skew:.1f} s apart",
                    "enable time sync: sudo timedatectl set-ntp true",
                )
            ]
        return [self.ok(found=f"{skew:.2f} s", expected=f"<= {MAX_SKEW_S:g} s from the engine's clock")]
