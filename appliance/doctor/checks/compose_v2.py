"""Compose v2 is installed (``docker compose`` or the standalone v2 binary)."""

from __future__ import annotations

from appliance.docker.compose import INSTALL_HINT, find_compose
from appliance.docker.errors import ComposeError
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class ComposeV2(Check):
    slug = "compose"
    title = "Docker Compose v2 present"
    needs_config = False
    timeout_s = 12.0  # a cold first exec of the ~70 MB compose binary, beside the other checks, is slow

    def run(self, ctx: DoctorContext) -> list[Finding]:
        try:
            binary = find_compose(timeout=5.0)
        except ComposeError:
            return [self.problem(Level.ERROR, "Compose v2 (docker compose version)", "not found", INSTALL_HINT)]
        return [self.ok(found=f"Compose {binary.version}", expected="v2")]
