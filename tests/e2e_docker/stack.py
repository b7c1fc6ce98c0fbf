"""The compose stack as the e2e-docker tier and the overhead benchmark run it: a copy of the repository's stack
files in .cache/ (the wheelhouse hard-linked), its own .env and models.yaml, the generated tiny model, and
``make up --local`` against a Docker Engine on the prepared data root (tests.e2e_docker.prepare).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx

from tests.e2e_docker.prepare import BASE_IMAGE, PROJECT
from tests.helpers import ROOT, set_line
from tests.integration.docker.harness import Engine

STACK_COPY = ROOT / ".cache" / "e2e-docker-stack"
STACK_FILES = (
    "appliance",
    "compose",
    "nginx",
    "prometheus",
    "grafana",
    "datadog",
    "docker-compose.yml",
    "pyproject.toml",
    "README.md",
    "Makefile",
    ".env.example",
    ".secrets.example",
    ".dockerignore",
)
MODEL_IN_CONTAINER = "/appliance/models/tiny"
KEY_RE = re.compile(r"Your admin API key.*?(sk-[A-Za-z0-9_\-]+)", re.DOTALL)
# The tier's "LAN" for scale-out (test_scale_out): a veth pair inside the test's network namespace, one end per
# "machine"; the head's serve container has HEAD_BIND on a macvlan over HEAD_LINK, a worker WORKER_BIND over
# WORKER_LINK. A private range that exists only inside the namespace: nothing leaves it.
CLUSTER_SUBNET = "10.77.0.0/24"
HEAD_LINK, WORKER_LINK = "clu0", "clu1"
HEAD_BIND, WORKER_BIND = "10.77.0.10", "10.77.0.20"
WORKER_NODE = "worker1"
# HF_TOKEN of the tier's .secrets: test_security looks for it where it must not be (serve's environment)
HF_TOKEN_CANARY = "hf_e2e_canary_not_a_real_token_0123456789"


@dataclass
class DockerStack:
    root: Path
    engine: Engine
    https_port: int
    key: str
    up_output: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def cafile(self) -> Path:
        return self.root / "data" / "certs" / "live" / "localhost" / "fullchain.pem"

    def make(self, *targets: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return make(self.root, self.engine, *targets, timeout=timeout)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(
            self.url + path, verify=ssl.create_default_context(cafile=str(self.cafile)), timeout=10, **kwargs
        )

    def post(self, path: str, *, timeout: float = 10, **kwargs) -> httpx.Response:
        return httpx.post(
            self.url + path, verify=ssl.create_default_context(cafile=str(self.cafile)), timeout=timeout, **kwargs
        )

    def containers(self) -> list:
        client = docker.DockerClient(base_url=self.engine.url, timeout=30)
        try:
            return client.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT}"})
        finally:
            client.close()

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        last = None
        while time.monotonic() - started < timeout:
            try:
                last = self.get("/health/ready")
                if last.status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError as err:
                last = err
            time.sleep(2)
        raise AssertionError(f"/health/ready did not answer 200 within {timeout:.0f} s; last: {last!r}")


def make(root: Path, engine: Engine, *targets: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DOCKER_HOST": engine.url,
        "APPLIANCE_GPU_COUNT": "0",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "COLUMNS": "160",
    }
    venv = ROOT / ".venv"
    # -o: the repository's venv is used as it is (never re-installed from the copy, which would point its
    # editable install at .cache/)
    argv = [
        "make",
        "--no-print-directory",
        "-C",
        str(root),
        "-o",
        f"{venv}/.installed-base",
        *targets,
        f"VENV={venv}",
        f"PYTHON={sys.executable}",
        f"UP_ARGS=--local --base-image {BASE_IMAGE}",
    ]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def stack_logs(root: Path, engine: Engine, tail: int = 120) -> str:
    """The last lines of every service's log (for an assertion message)."""
    env = {**os.environ, "DOCKER_HOST": engine.url, "APPLIANCE_GPU_COUNT": "0"}
    logs = subprocess.run(
        [sys.executable, "-m", "appliance", "logs", "--no-follow", "--tail", str(tail)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    status = ""
    client = docker.DockerClient(base_url=engine.url, timeout=60)
    try:
        for container in client.containers.list(filters={"label": "com.docker.compose.service=serve"}):
            script = (
                "cd /tmp/ray/session_latest/logs && for f in $(grep -lE 'Error|Traceback' serve/*.log *.err "
                "2>/dev/null | head -4); do echo \"== $f\"; grep -vE '^\\s*$' $f | tail -n 40; done"
            )
            status = container.exec_run(["sh", "-c", script]).output.decode(errors="replace")[-10000:]
    except docker.errors.DockerException as err:
        status = f"(serve status: {err})"
    finally:
        client.close()
    return (
        "\n--- stack logs ---\n"
        + logs.stdout[-8000:]
        + logs.stderr[-2000:]
        + "\n--- Ray logs with errors (serve container) ---\n"
        + status
    )


def copy_stack(dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in STACK_FILES:
        src = ROOT / name
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            link = name == "compose"  # the wheelhouse (about 1 GB): hard links, not copies
            shutil.copytree(src, dest / name, ignore=ignore, copy_function=os.link if link else shutil.copy2)
        else:
            shutil.copy2(src, dest / name)


def tiny_model(dest: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/make_tiny_model.py"), str(dest)], check=True, capture_output=True
    )


def cluster_link() -> None:
    """The veth pair of the tier's cluster network (made once per namespace; only in scripts/ci/isolated.sh)."""
    if os.environ.get("APPLIANCE_NETNS_ISOLATED") != "1":
        raise RuntimeError("the cluster link is made only inside scripts/ci/isolated.sh's namespace")
    try:
        socket.if_nametoindex(HEAD_LINK)  # of this namespace (/sys/class/net shows the one sysfs was mounted in)
    except OSError:
        subprocess.run(["ip", "link", "add", HEAD_LINK, "type", "veth", "peer", "name", WORKER_LINK], check=True)
    for link in (HEAD_LINK, WORKER_LINK):
        subprocess.run(["ip", "link", "set", link, "up"], check=True)


def configure(root: Path, http_port: int, https_port: int, *, cluster: bool = False) -> None:
    """The tier's .env, .secrets and models.yaml; ``cluster``: the head of a Ray cluster on the tier's veth
    "LAN" (cluster_link), expecting one worker."""
    env = root / ".env"
    shutil.copyfile(root / ".env.example", env)
    for key, value in {
        "ACCELERATOR": "cpu",
        "BIND_ADDRESS": "127.0.0.1",
        "HTTP_PORT": str(http_port),
        "HTTPS_PORT": str(https_port),
        "COMPOSE_PROJECT_NAME": PROJECT,
        "RAY_DASHBOARD_ENABLED": "false",
        "WATCHDOG_SETTLE_SECONDS": "1",
        "WATCHDOG_BACKOFF_BASE_SECONDS": "1",
        "SUPERVISOR_DOCTOR_INTERVAL_SECONDS": "3600",
        **(
            {
                "RAY_CLUSTER_INTERFACE": HEAD_LINK,
                "RAY_CLUSTER_SUBNET": CLUSTER_SUBNET,
                "RAY_CLUSTER_BIND": HEAD_BIND,
                "RAY_WORKER_NODES": "1",
            }
            if cluster
            else {}
        ),
    }.items():
        set_line(env, key, value)
    secrets = root / ".secrets"
    shutil.copyfile(root / ".secrets.example", secrets)
    secrets.chmod(0o600)
    set_line(secrets, "HF_TOKEN", HF_TOKEN_CANARY)
    (root / "models.yaml").write_text(
        "models:\n  - id: tiny\n    source: " + MODEL_IN_CONTAINER + "\n    max_model_len: 512\n"
        "    gpu_memory_utilization: 0.3\n    max_tokens_cap: 64\n"
    )


def stack_secret(stack: DockerStack, key: str) -> str:
    for line in (stack.root / ".secrets").read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == key:
            return value.strip()
    raise AssertionError(f"{key} is not in .secrets")
