"""A real Docker Engine for the session, a compose project per test, and the supervisor as a process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.docker.compose import ComposeCli, find_compose
from appliance.docker.engine import DockerEngine
from tests.helpers import ROOT, free_port, make_config_dir, set_line
from tests.integration.docker.harness import Engine, docker_engine

PROJECT_DIR = Path(__file__).parent / "project"


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    root = Path(f"/tmp/appliance-dockerd-{os.getpid()}")  # short: the socket path has a length limit
    with docker_engine(root) as started:
        yield started


@pytest.fixture
def docker_api(engine: Engine) -> Iterator[DockerEngine]:
    with DockerEngine(engine.url) as api:
        yield api


@pytest.fixture
def compose(engine: Engine) -> Iterator[ComposeCli]:
    cli = ComposeCli(
        f"t{uuid.uuid4().hex[:8]}",
        [PROJECT_DIR / "compose.yaml"],
        project_dir=PROJECT_DIR,
        docker_host=engine.url,
        binary=find_compose(),
    )
    yield cli
    with contextlib.suppress(Exception):
        cli.run("--profile", "crash", "--profile", "nginx", "down", "--remove-orphans", "-t", "1", timeout=120)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Supervisor:
    """``python -m appliance supervise`` as a child process with its own config dir."""

    def __init__(self, workdir: Path, engine: Engine, project: str, **settings: str) -> None:
        self.workdir, self.engine, self.project = workdir, engine, project
        self.port = free_port()
        workdir.mkdir(exist_ok=True)
        make_config_dir(workdir)
        values = {
            "COMPOSE_PROJECT_NAME": project,
            "SUPERVISOR_METRICS_PORT": str(self.port),
            "SUPERVISOR_STATE_FILE": str(workdir / "state.json"),
            "LOG_DIR": str(workdir / "logs"),
            "WATCHDOG_SETTLE_SECONDS": "0.3",
            "WATCHDOG_BACKOFF_BASE_SECONDS": "0.5",
            "WATCHDOG_RECONCILE_SECONDS": "5",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
        }
        values.update(settings)
        for key, value in values.items():
            set_line(workdir / ".env", key, value)
        self.log = workdir / "supervisor.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, ready_service: str = "web") -> Supervisor:
        env = dict(os.environ, DOCKER_HOST=self.engine.url, APPLIANCE_GPU_COUNT="0", PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "--log-level", "INFO", "supervise", "--metrics-addr", "127.0.0.1"],
            cwd=self.workdir,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(
            lambda: (
                metric(scrape(self.port), "appliance_supervisor_service_healthy", service=ready_service) is not None
            ),
            30,
            "the supervisor's first reconcile",
        )
        return self

    def metrics(self) -> str:
        return scrape(self.port)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def supervisor(tmp_path: Path, engine: Engine, compose: ComposeCli) -> Iterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def make(**settings: str) -> Supervisor:
        sup = Supervisor(tmp_path / f"sup{len(made)}", engine, compose.project, **settings)
        made.append(sup)
        return sup

    yield make
    for sup in made:
        if sup.process is not None and sup.process.poll() is None:
            sup.process.kill()
            sup.process.wait(timeout=10)
