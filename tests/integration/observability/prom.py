"""Real Prometheus and Alertmanager processes (Debian's packages) for the observability tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import ROOT, free_port, need

PROMETHEUS_DIR = ROOT / "prometheus"
START_TIMEOUT = 60


def need_tool(name: str, package: str) -> str:
    """The tool's path; fail under CI (``make test`` installs it: TEST_TOOLS), skip elsewhere."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    need(path is not None, f"{name} is missing (Debian package {package}); `make test` installs it")
    return path


def wait_for(what: str, probe: Callable[[], Any], timeout: float = START_TIMEOUT) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (httpx.HTTPError, OSError) as err:
            last = err
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@contextmanager
def running(args: list[str], ready_url: str, log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(
                f"{args[0]} at {ready_url} (log: {log})",
                lambda: proc.poll() is None and httpx.get(ready_url, timeout=5).status_code == 200,
            )
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def prometheus(config: Path, data: Path, *, port: int | None = None, extra: tuple[str, ...] = ()) -> Iterator[str]:
    """Prometheus on 127.0.0.1 under /prometheus/ (as behind Nginx); yields its base URL."""
    binary = need_tool("prometheus", "prometheus")
    port = port or free_port()
    base = f"http://127.0.0.1:{port}/prometheus"
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url={base}/",
        "--web.route-prefix=/prometheus/",
        *extra,
    ]
    with running(args, f"{base}/-/ready", data.parent / f"prometheus-{port}.log"):
        yield base


@contextmanager
def alertmanager(config: Path, data: Path, *, port: int | None = None) -> Iterator[str]:
    binary = need_tool("prometheus-alertmanager", "prometheus-alertmanager")
    port = port or free_port()
    base = f"http://127.0.0.1:{port}/alertmanager"
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url={base}/",
        "--web.route-prefix=/alertmanager/",
        "--cluster.listen-address=",
    ]
    with running(args, f"{base}/-/ready", data.parent / f"alertmanager-{port}.log"):
        yield base


def query(base: str, expr: str, **params: str) -> dict:
    response = httpx.get(f"{base}/api/v1/query", params={"query": expr, **params}, timeout=30)
    return response.json()
