"""The whole doctor run against the real engine and a running compose project (the test's busybox stack)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.docker.compose import ComposeCli
from appliance.docker.errors import ComposeError
from tests.helpers import ROOT, make_config_dir, set_line
from tests.integration.docker.harness import Engine


def run_doctor(workdir: Path, engine: Engine, *args: str) -> tuple[int, dict]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance",
            "doctor",
            "--json",
            "--docker-host",
            engine.url,
            "--health-url",
            "http://127.0.0.1:9/health/ready",
            "--prometheus-url",
            "http://127.0.0.1:9",
            *args,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "APPLIANCE_GPU_COUNT": "0", "HOME": str(workdir)},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def findings(data: dict, check: str) -> list[dict]:
    return next(c["findings"] for c in data["checks"] if c["check"] == check)


def test_doctor_against_the_real_engine(tmp_path: Path, engine: Engine, compose: ComposeCli) -> None:
    make_config_dir(tmp_path)
    set_line(tmp_path / ".env", "COMPOSE_PROJECT_NAME", compose.project)
    set_line(tmp_path / ".env", "HTTP_PORT", "18080")
    set_line(tmp_path / ".env", "HTTPS_PORT", "18443")
    compose.up("web", wait=True)
    compose.run("--profile", "crash", "up", "-d", "crashy")
    with pytest.raises(ComposeError, match="exited with status code 3"):  # crashy exits 3 after 1 s
        compose.run("--profile", "crash", "wait", "crashy", timeout=30)

    code, data = run_doctor(tmp_path, engine)
    assert code == 1
    version = findings(data, "docker-engine")[0]
    assert version["level"] == "ok" and version["found"].startswith("Docker 20.10")
    assert findings(data, "clock")[0]["level"] == "ok"
    assert findings(data, "compose")[0]["level"] == "ok"
    services = {f["title"]: f for f in findings(data, "services")}
    assert services["service web"]["level"] == "ok"
    assert services["service crashy"]["level"] == "error" and services["service crashy"]["found"] == "exited"
    assert findings(data, "health-ready")[0]["level"] == "error"
    assert data["seconds"] <= 5  # generous: the 2 s target is measured by scripts/bench_supervisor.py

    code, data = run_doctor(tmp_path, engine, "--preflight")
    assert not any(c["check"] in ("services", "health-ready", "prometheus-targets") for c in data["checks"])


def test_status_lists_the_services(tmp_path: Path, engine: Engine, compose: ComposeCli) -> None:
    make_config_dir(tmp_path)
    set_line(tmp_path / ".env", "COMPOSE_PROJECT_NAME", compose.project)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "APPLIANCE_GPU_COUNT": "0", "DOCKER_HOST": engine.url}

    def status() -> tuple[int, dict]:
        result = subprocess.run(
            [sys.executable, "-m", "appliance", "status", "--json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        return result.returncode, json.loads(result.stdout)

    code, data = status()
    assert code == 1 and data["services"] == []  # not up
    compose.up("web", "sick", wait=True)
    code, data = status()
    assert code == 0 and [s["service"] for s in data["services"]] == ["sick", "web"]
    assert all(s["state"] == "running" and s["health"] == "healthy" for s in data["services"])
    compose.stop("web")
    code, data = status()
    assert code == 1 and {s["service"]: s["state"] for s in data["services"]}["web"] == "exited"
