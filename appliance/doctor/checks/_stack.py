"""Shared by the running-stack checks: the project's containers (None when the engine does not answer)."""

from __future__ import annotations

from appliance.docker.errors import ApplianceDockerError
from appliance.docker.model import ContainerState
from appliance.doctor import probes
from appliance.doctor.context import DoctorContext


def project_containers(ctx: DoctorContext) -> list[ContainerState] | None:
    assert ctx.config is not None
    try:
        with probes.open_engine(ctx.docker_host, timeout=1.5) as engine:
            containers: list[ContainerState] = engine.project_containers(ctx.config.settings.compose_project_name)
            return containers
    except ApplianceDockerError:
        return None
