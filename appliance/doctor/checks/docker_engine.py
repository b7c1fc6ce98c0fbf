"""The Docker Engine answers and is at least the minimum version."""

from __future__ import annotations

from appliance.docker.errors import ApplianceDockerError
from appliance.doctor import probes
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level

MIN_VERSION = (20, 10)


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split("-")[0].split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


class DockerEngineCheck(Check):
    slug = "docker-engine"
    title = "Docker Engine reachable"
    in_stack = True
    needs_config = False

    def run(self, ctx: DoctorContext) -> list[Finding]:
        wanted = ".".join(map(str, MIN_VERSION))
        try:
            version = probes.docker_snapshot(ctx.docker_host)["version"]
        except ApplianceDockerError as err:
            return [
                self.problem(
                    Level.ERROR,
                    f"Docker Engine >= {wanted} answering",
                    str(err),
                    "start it: sudo systemctl start docker; add yourself to the docker group",
                )
            ]
        found = str(version.get("Version", "unknown"))
        if version_tuple(found) < MIN_VERSION:
            return [
                self.problem(
                    Level.ERROR,
                    f"Docker Engine >= {wanted}",
                    found,
                    "upgrade Docker: https://docs.docker.com/engine/install/",
                )
            ]
        return [self.ok(found=f"Docker {found} (API {version.get('ApiVersion', '?')})", expected=f">= {wanted}")]
