"""The supervisor drives nginx through Docker: signals reach the container; a failing `nginx -t` raises."""

from __future__ import annotations

import pytest

from appliance.docker.compose import ComposeCli
from appliance.docker.engine import DockerEngine
from appliance.docker.errors import ApplianceDockerError
from appliance.docker.nginx import NginxContainer
from tests.integration.docker.conftest import wait_until


def test_reload_and_reopen_signals(compose: ComposeCli, docker_api: DockerEngine) -> None:
    nginx = NginxContainer(docker_api, compose.project)
    nginx.reopen_logs()  # not running: a warning, no exception
    with pytest.raises(ApplianceDockerError, match="no running nginx"):
        nginx.reload()
    compose.run("--profile", "nginx", "up", "-d", "nginx")
    cid = next(c.id for c in docker_api.project_containers(compose.project) if c.service == "nginx")
    wait_until(lambda: docker_api.exec(cid, ["cat", "/tmp/signals"])[0] == 0, 10, "the stand-in to trap signals")
    nginx.reload()
    nginx.reopen_logs()
    wait_until(lambda: docker_api.exec(cid, ["cat", "/tmp/signals"])[1].split() == ["hup", "usr1"], 10, "both signals")
    with pytest.raises(ApplianceDockerError, match="nginx -t failed|exec in"):
        nginx.test()  # busybox has no nginx binary
