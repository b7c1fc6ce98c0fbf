"""Build the stack's images for the e2e-docker tier, outside the tests' network namespace.

The tests run with only loopback (scripts/ci/isolated.sh), so everything that needs Debian's mirror or the
package index happens here first, against a dockerd whose data root is kept between runs
(``DATA_ROOT``): the local Debian base (scripts/docker/debian_base.sh, once per machine), the wheelhouse
(scripts/docker/wheelhouse.sh) and ``docker compose build`` with exactly the files and arguments
``make up --local`` uses later, so that the test's own build is served from the build cache.

Run: ``python -m tests.e2e_docker.prepare`` (``make test`` does, before the tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import docker

from appliance.docker.compose import ComposeCli, find_compose
from appliance.stack.plan import COMPOSE_FILE, CPU_FILE, LOCAL_FILE
from tests.integration.docker.harness import docker_engine

ROOT = Path(__file__).resolve().parents[2]
DATA_ROOT = Path(os.environ.get("APPLIANCE_E2E_DOCKER_ROOT", "/var/tmp/appliance-e2e-docker"))
BASE_IMAGE = "appliance-local/debian:bookworm-slim"
PROJECT = "appliance-e2e"
BUILD_ENV = {"COMPOSE_PROJECT_NAME": PROJECT, "APPLIANCE_BASE_IMAGE": BASE_IMAGE, "APPLIANCE_PIP_OFFLINE": "1"}


def _has_image(url: str, name: str) -> bool:
    client = docker.DockerClient(base_url=url, timeout=30)
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()


def build(url: str, root: Path = ROOT) -> None:
    """``docker compose build`` of the CPU stack from the local base (the test's ``up --build`` reuses it)."""
    files = [root / COMPOSE_FILE, root / CPU_FILE, root / LOCAL_FILE]
    compose = ComposeCli(PROJECT, files, project_dir=root, docker_host=url, binary=find_compose(), env=BUILD_ENV)
    compose.run("build", timeout=3600, stream=True)


def main() -> int:
    started = time.monotonic()
    with docker_engine(DATA_ROOT, keep=True, isolated=False, busybox=False, extra_args=("--bridge=none",)) as engine:
        env = {**os.environ, "DOCKER_HOST": engine.url}
        if not _has_image(engine.url, BASE_IMAGE):
            subprocess.run([str(ROOT / "scripts/docker/debian_base.sh"), BASE_IMAGE], env=env, check=True)
        subprocess.run([str(ROOT / "scripts/docker/wheelhouse.sh"), sys.executable], env=env, check=True)
        build(engine.url)
        client = docker.DockerClient(base_url=engine.url, timeout=300)
        try:  # earlier builds' images, superseded: a machine that runs the tests often must not fill its disk
            client.images.prune(filters={"dangling": True})
        finally:
            client.close()
    print(f"e2e-docker images ready in {time.monotonic() - started:.0f} s ({DATA_ROOT})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
