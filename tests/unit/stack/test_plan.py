"""Pure decisions of `make up`: compose files, profiles, per-service config digests, ray start, URLs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.config.keys import create_key
from appliance.config.secrets import Role
from appliance.serve.head import ray_start_argv
from appliance.stack.plan import (
    api_urls,
    local_health_url,
    plan_stack,
    serve_digest,
    socket_path,
    supervisor_digest,
    worker_env,
)
from appliance.stack.render import render_run_dir, write_if_changed
from tests.helpers import make_config_dir, set_line


def _config(root: Path, gpus: int | None = 0, **env: str):
    if not (root / ".env").exists():
        make_config_dir(root)
        set_line(root / ".secrets", "DASHBOARD_PASSWORD", "a-dashboard-password-1")
    for key, value in env.items():
        set_line(root / ".env", key, value)
    return load_config(
        ConfigFiles(env=root / ".env", secrets=root / ".secrets", models=root / "models.yaml"), gpu_count=gpus
    )


def test_cpu_and_gpu_files_and_the_local_override(tmp_path: Path) -> None:
    cpu = plan_stack(_config(tmp_path, gpus=0), rendered={})
    assert cpu.files == ("docker-compose.yml", "compose/cpu.yml") and cpu.profiles == ()
    assert cpu.env["APPLIANCE_PIP_OFFLINE"] == "0" and cpu.env["APPLIANCE_BASE_IMAGE"] == "debian:bookworm-slim"
    gpu = plan_stack(_config(tmp_path, gpus=2), rendered={})
    assert gpu.files == ("docker-compose.yml", "compose/gpu.yml")
    local = plan_stack(_config(tmp_path), rendered={}, local=True, base_image="local/debian:12")
    assert local.files[-1] == "compose/local.yml" and local.env["APPLIANCE_PIP_OFFLINE"] == "1"
    assert local.env["APPLIANCE_BASE_IMAGE"] == "local/debian:12"
    assert local.files == ("docker-compose.yml", "compose/cpu.yml", "compose/local.yml")


def test_datadog_profile_only_with_a_key(tmp_path: Path) -> None:
    assert plan_stack(_config(tmp_path), rendered={}).profiles == ()
    set_line(tmp_path / ".secrets", "DATADOG_API_KEY", "0123456789abcdef0123456789abcdef")
    assert plan_stack(_config(tmp_path), rendered={}).profiles == ("datadog",)


def test_serve_digest_follows_what_serve_reads_only(tmp_path: Path) -> None:
    base = _config(tmp_path)
    digest, sup = serve_digest(base), supervisor_digest(base)
    edge = _config(tmp_path, NGINX_RATE_LIMIT_RPM="42")
    assert serve_digest(edge) == digest, "an nginx setting must not restart the engines"
    assert supervisor_digest(edge) != sup, "the supervisor reads every setting"
    create_key(tmp_path / ".secrets", "alice", Role.ADMIN, (), existing=(), served=[])
    assert serve_digest(_config(tmp_path)) == digest, "a new API key is reloaded, not restarted"
    assert serve_digest(_config(tmp_path, MODEL_MAX_MODEL_LEN="2048")) != digest
    assert serve_digest(_config(tmp_path, PII_ENABLED="true")) != digest


def test_rendered_files_change_nothing_the_second_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path)
    first = render_run_dir(config, version="1.0", run_dir=tmp_path / "run", certs_dir=tmp_path / "certs")
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.is_file()}
    second = render_run_dir(config, version="1.0", run_dir=tmp_path / "run", certs_dir=tmp_path / "certs")
    assert first == second, "same config, same files (the htpasswd salt is kept while the password matches)"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    plan = plan_stack(config, rendered=first)
    assert (
        plan.env["APPLIANCE_NGINX_CONFIG_HASH"]
        == plan_stack(config, rendered=second).env["APPLIANCE_NGINX_CONFIG_HASH"]
    )
    assert "rules/slo.yml" in first["prometheus"] and "nginx.conf" in first["nginx"]
    assert oct((tmp_path / "run" / "grafana_admin_password").stat().st_mode & 0o777) == "0o600"
    assert b"DD_API_KEY" not in (tmp_path / "run" / "datadog.env").read_bytes()
    set_line(tmp_path / ".secrets", "DASHBOARD_PASSWORD", "another-password-22")
    third = render_run_dir(_config(tmp_path), version="1.0", run_dir=tmp_path / "run", certs_dir=tmp_path / "certs")
    assert third["nginx"]["htpasswd"] != first["nginx"]["htpasswd"]


def test_write_if_changed_is_atomic_and_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "a" / "f"
    assert write_if_changed(target, b"x", 0o600) is True
    assert write_if_changed(target, b"x", 0o600) is False
    assert write_if_changed(target, b"y", 0o600) is True and target.read_bytes() == b"y"
    assert [p.name for p in target.parent.iterdir()] == ["f"]


def test_ray_head_command(tmp_path: Path) -> None:
    settings = _config(tmp_path).settings
    argv = ray_start_argv(settings, cores=2)
    assert argv[:4] == ["ray", "start", "--head", "--block"]
    assert "--num-cpus=8" in argv and "--metrics-export-port=8080" in argv and "--port=6379" in argv
    assert "--include-dashboard=false" in argv, "the Ray dashboard is off by default"
    shown = ray_start_argv(_config(tmp_path, RAY_DASHBOARD_ENABLED="true").settings, cores=2)
    assert "--include-dashboard=true" in shown and "--dashboard-host=0.0.0.0" in shown
    quiet = ray_start_argv(_config(tmp_path, RAY_DASHBOARD_ENABLED="false", RAY_NUM_CPUS="3").settings, cores=64)
    assert "--include-dashboard=false" in quiet and "--num-cpus=3" in quiet
    assert "--num-cpus=64" in ray_start_argv(settings, cores=64)
    assert "--labels=appliance.io/node=head" in argv
    assert "--labels=appliance.io/node=gpu-a" in ray_start_argv(
        _config(tmp_path, RAY_NODE_NAME="gpu-a").settings, cores=2
    )


def test_urls_and_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, BIND_ADDRESS="127.0.0.1", HTTPS_PORT="8443")
    assert api_urls(config)["api"] == "https://127.0.0.1:8443/v1"
    assert local_health_url(config) == "https://127.0.0.1:8443/health/startup"
    named = _config(tmp_path, DOMAIN="llm.example.com", HTTPS_PORT="443", BIND_ADDRESS="0.0.0.0")
    assert api_urls(named)["grafana"] == "https://llm.example.com/grafana/"
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert socket_path(None) == "/var/run/docker.sock"
    assert socket_path("unix:///tmp/d/docker.sock") == "/tmp/d/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other.sock")
    assert socket_path(None) == "/run/other.sock"
    assert os.environ["DOCKER_HOST"]


def test_direct_ingress_env_and_proxy_port(tmp_path: Path) -> None:
    from appliance.serve.head import proxy_port, serving_env

    settings = _config(tmp_path, SERVE_HTTP_PORT="8000").settings
    assert serving_env(settings) == {
        "RAY_worker_niceness": "15",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": "8000",
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": "8001",
    }
    assert proxy_port(settings) == 8002, "Serve's proxy moves out of the way of the ingress"
    two = _config(tmp_path, SERVE_INGRESS_REPLICAS="2").settings
    assert serving_env(two) == {"RAY_worker_niceness": "15"} and proxy_port(two) == 8000, (
        "several ingress replicas: through the proxy"
    )
    off = _config(tmp_path, SERVE_INGRESS_REPLICAS="1", SERVE_DIRECT_INGRESS="false").settings
    assert serving_env(off) == {"RAY_worker_niceness": "15"} and proxy_port(off) == 8000
    level = _config(tmp_path, RAY_WORKER_NICENESS="0").settings
    assert serving_env(level)["RAY_worker_niceness"] == "0", "the operator's niceness reaches ray start"


def test_every_variable_compose_interpolates_comes_from_the_plan(tmp_path: Path) -> None:
    """Compose never falls back to its own reading of .env: each ${NAME} of the stack files is exported."""
    import re

    from tests.helpers import ROOT

    names = set()
    for path in [ROOT / "docker-compose.yml", *sorted((ROOT / "compose").glob("*.yml"))]:
        names |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    assert {"BIND_ADDRESS", "HTTPS_PORT", "PROMETHEUS_RETENTION_DAYS"} <= names  # the scan finds them
    config = _config(
        tmp_path,
        BIND_ADDRESS="127.0.0.2",
        HTTP_PORT="8080",
        HTTPS_PORT="8443",
        DOMAIN="llm.example.com",
        PROMETHEUS_RETENTION_DAYS="30",
        SUPERVISOR_METRICS_PORT="9500",
        RAY_CLUSTER_INTERFACE="eth1",  # compose/cluster.yml's too
        RAY_CLUSTER_SUBNET="10.50.0.0/24",
        RAY_CLUSTER_BIND="10.50.0.10",
    )
    env = {**plan_stack(config, rendered={}).env, **worker_env(["ray", "start"], config.settings)}
    assert names <= set(env), f"not exported by plan_stack: {sorted(names - set(env))}"
    assert {
        k: env[k]
        for k in (
            "BIND_ADDRESS",
            "HTTP_PORT",
            "HTTPS_PORT",
            "DOMAIN",
            "PROMETHEUS_RETENTION_DAYS",
            "SUPERVISOR_METRICS_PORT",
        )
    } == {
        "BIND_ADDRESS": "127.0.0.2",
        "HTTP_PORT": "8080",
        "HTTPS_PORT": "8443",
        "DOMAIN": "llm.example.com",
        "PROMETHEUS_RETENTION_DAYS": "30",
        "SUPERVISOR_METRICS_PORT": "9500",
    }
