"""The stack's nginx, driven from the supervisor through Docker: config test, reload, reopen logs."""

from __future__ import annotations

import logging

from appliance.docker.engine import DockerEngine
from appliance.docker.errors import ApplianceDockerError

_LOGGER = logging.getLogger(__name__)


class NginxContainer:
    """The running container of ``service`` in ``project``; each call raises ApplianceDockerError on failure."""

    def __init__(self, engine: DockerEngine, project: str, service: str = "nginx") -> None:
        self.engine, self.project, self.service = engine, project, service

    def _container_id(self) -> str:
        for container in self.engine.project_containers(self.project):
            if container.service == self.service and container.status == "running":
                return container.id
        raise ApplianceDockerError(
            f"no running {self.service} container in project {self.project}",
            hint=f"docker compose up -d {self.service}",
        )

    def test(self) -> None:
        code, output = self.engine.exec(self._container_id(), ["nginx", "-t", "-q"])
        if code != 0:
            raise ApplianceDockerError(f"nginx -t failed: {output.strip()[-500:]}")

    def reload(self) -> None:
        self.engine.kill(self._container_id(), "SIGHUP")

    def reopen_logs(self) -> None:
        """SIGUSR1: nginx reopens its log files (after they were renamed by the rotation)."""
        try:
            self.engine.kill(self._container_id(), "SIGUSR1")
        except ApplianceDockerError as err:  # nothing to reopen when nginx is not running
            _LOGGER.warning("could not ask nginx to reopen its logs: %s", err)
