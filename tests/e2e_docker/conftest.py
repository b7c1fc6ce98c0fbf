"""The e2e-docker tier: the real compose stack, built from a local Debian base, brought up with ``make up``.

Images are built by ``python -m tests.e2e_docker.prepare`` (``make test`` runs it outside the network
namespace, where Debian's mirror and the package index can be reached); here, with only loopback, a dockerd
on the same kept data root serves ``make up --local``'s build from its cache. The stack runs from a copy of
the repository's stack files in .cache/ (the wheelhouse hard-linked), with its own .env, models.yaml and
the generated tiny model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.e2e_docker.prepare import BASE_IMAGE, DATA_ROOT
from tests.e2e_docker.stack import (
    KEY_RE,
    STACK_COPY,
    DockerStack,
    cluster_link,
    configure,
    copy_stack,
    make,
    stack_logs,
    tiny_model,
)
from tests.helpers import free_port, need
from tests.integration.docker.harness import Engine, docker_engine


@pytest.fixture(scope="package")
def engine() -> Iterator[Engine]:
    need(
        os.environ.get("APPLIANCE_NETNS_ISOLATED") == "1",
        "the e2e-docker tier runs inside scripts/ci/isolated.sh (make test)",
    )
    need(
        (DATA_ROOT / "data").is_dir(),
        f"no prepared images in {DATA_ROOT}: run python -m tests.e2e_docker.prepare first (make test does)",
    )
    # The userland proxy publishes nginx's ports on 127.0.0.1 (there are no iptables rules here).
    with docker_engine(DATA_ROOT, keep=True, busybox=False, extra_args=()) as started:
        client = docker.DockerClient(base_url=started.url, timeout=30)
        try:
            need(
                any(BASE_IMAGE in image.tags for image in client.images.list()),
                f"{BASE_IMAGE} is missing from {DATA_ROOT}: run python -m tests.e2e_docker.prepare (make test does)",
            )
        finally:
            client.close()
        yield started


# data/logs on a filesystem of its own, so the chaos tier can fill it to 100 % (doctor warns: under 2 GiB)
LOGS_TMPFS_SIZE = "1g"


def _unmount_logs(root: Path) -> None:
    logs = root / "data" / "logs"
    if logs.is_mount():
        subprocess.run(["umount", "--lazy", str(logs)], check=True)


@pytest.fixture(scope="package")
def docker_stack(engine: Engine) -> Iterator[DockerStack]:
    root = STACK_COPY
    _unmount_logs(root)  # left by an interrupted run
    copy_stack(root)
    logs = root / "data" / "logs"
    logs.mkdir(parents=True)
    # Mounted before `make up`: the containers' bind mounts of data/ and data/logs then carry it (rbind).
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={LOGS_TMPFS_SIZE},mode=0755", "tmpfs", str(logs)], check=True)
    tiny_model(root / "models" / "tiny")
    http_port, https_port = free_port(), free_port()
    # the head of a two-"machine" Ray cluster on a veth pair (test_scale_out); every other test runs against it too
    cluster_link()
    configure(root, http_port, https_port, cluster=True)
    try:
        up = make(root, engine, "up", timeout=3000)
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:] + stack_logs(root, engine)
        match = KEY_RE.search(up.stdout)
        assert match, f"make up printed no admin key:\n{up.stdout[-3000:]}"
        yield DockerStack(root, engine, https_port, match.group(1), up.stdout + up.stderr)
    finally:
        down = make(root, engine, "down", timeout=600)
        if down.returncode != 0:
            print(down.stdout[-3000:], down.stderr[-3000:], file=sys.stderr)
        _unmount_logs(root)
