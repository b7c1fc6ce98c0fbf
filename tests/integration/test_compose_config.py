"""`docker compose config` of the real stack files, in every mode `make up` picks: the structure the issue asks
for (only nginx publishes ports, healthchecks, restart policies, log limits, GPU reservation only in GPU mode,
registry-only services off in local mode, no secret in any environment)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from appliance.docker.compose import find_compose
from appliance.docker.model import WATCH_LABEL
from tests.helpers import ROOT

BUILT = {"serve", "nginx", "supervisor", "prometheus"}
HEALTHCHECKED = {"serve", "nginx", "supervisor", "prometheus", "alertmanager", "grafana"}


def _config(*files: str, profiles: tuple[str, ...] = (), **env: str) -> dict:
    argv = [*find_compose().argv, "-p", "cfgtest", "--project-directory", str(ROOT)]
    for file in ("docker-compose.yml", *files):
        argv += ["-f", str(ROOT / file)]
    for profile in profiles:
        argv += ["--profile", profile]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("APPLIANCE_", "COMPOSE_"))}
    result = subprocess.run(
        [*argv, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env={**clean, **env},
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("mode", ["cpu", "gpu"])
def test_structure(mode: str) -> None:
    config = _config(
        f"compose/{mode}.yml",
        profiles=("datadog",),
        APPLIANCE_BASE_IMAGE="local/base:1",
        BIND_ADDRESS="127.0.0.1",
        HTTPS_PORT="8443",
    )
    services = config["services"]
    expected = {
        "serve",
        "nginx",
        "supervisor",
        "prometheus",
        "alertmanager",
        "node-exporter",
        "nginx-exporter",
        "grafana",
        "datadog-agent",
    } | ({"dcgm-exporter"} if mode == "gpu" else set())
    assert set(services) == expected
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert service["logging"]["driver"] == "json-file" and service["logging"]["options"]["max-size"], name
        # Ray (GCS, dashboard = code execution) shares a network with nginx and Prometheus only
        expected_networks = {
            "serve": {"serving"},
            "nginx": {"backend", "serving"},
            "prometheus": {"backend", "serving"},
        }.get(name, {"backend"})
        assert set(service["networks"]) == expected_networks, name
        assert not service.get("ports") or name == "nginx", f"{name} publishes ports: only nginx may"
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "API_KEY", "TOKEN")):  # only where a file is, or a mode
                assert str(value).startswith(("/run/", "ENC[file@/run/secrets/")) or value == "token", (
                    name,
                    key,
                    value,
                )
    published = {(p["host_ip"], p["published"], p["target"]) for p in services["nginx"]["ports"]}
    assert published == {("127.0.0.1", "80", 80), ("127.0.0.1", "8443", 443)}
    for name in HEALTHCHECKED:
        assert services[name]["healthcheck"]["test"], name
    assert services["serve"]["healthcheck"]["start_period"] in ("30m0s", "1800s", "30m")
    for name in BUILT:
        assert services[name]["build"]["args"]["BASE_IMAGE"] == "local/base:1", name
    assert services["serve"]["build"]["args"]["ENGINE"] == mode
    devices = services["serve"].get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    if mode == "gpu":
        assert devices and devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    else:
        assert not devices
        assert services["serve"]["build"]["args"]["PIP_EXTRA_INDEX_URL"].startswith("https://download.pytorch.org")
    assert {"model-cache", "prometheus-data", "grafana-data"} <= set(config["volumes"])
    for name in ("prometheus", "alertmanager", "node-exporter"):  # one image: the command names the program
        assert services[name]["command"][0] in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter")
    mounts = {v["target"]: v for v in services["supervisor"]["volumes"]}
    assert mounts["/var/run/docker.sock"]["source"] == "/var/run/docker.sock"
    assert mounts["/appliance"]["read_only"] is True
    _serve_sees_only_what_it_reads(services["serve"])
    _datadog_key_is_a_file(services["datadog-agent"], config["secrets"])
    # the watchdog's label (appliance.docker.model.WATCH_LABEL): it never restarts its own container
    unwatched = {name for name, svc in services.items() if (svc.get("labels") or {}).get(WATCH_LABEL) == "false"}
    assert unwatched == {"supervisor"}


def test_datadog_agent_only_with_its_profile() -> None:
    assert "datadog-agent" not in _config("compose/cpu.yml")["services"]


def test_local_mode_builds_offline_and_drops_registry_only_images() -> None:
    config = _config(
        "compose/cpu.yml", "compose/local.yml", APPLIANCE_PIP_OFFLINE="1", APPLIANCE_DOCKER_SOCKET="/tmp/d/docker.sock"
    )
    services = config["services"]
    assert set(services) == {"serve", "nginx", "supervisor", "prometheus", "alertmanager", "node-exporter"}
    assert services["serve"]["build"]["args"]["PIP_OFFLINE"] == "1"
    assert services["serve"]["build"]["network"] == "host"
    mounts = {v["target"]: v for v in services["supervisor"]["volumes"]}
    assert mounts["/var/run/docker.sock"]["source"] == "/tmp/d/docker.sock"


def _serve_sees_only_what_it_reads(serve: dict) -> None:
    """Not root; no mount of the project (.secrets, TLS keys, data/run's other credentials); tokens as files."""
    uid = str(serve["user"]).split(":")[0]
    assert uid not in ("", "0", "root"), serve.get("user")
    mounts = {v["target"]: v for v in serve["volumes"]}
    assert set(mounts) == {
        "/run/appliance",
        "/appliance/models",
        "/appliance/data/logs",
        "/appliance/data/registry",
        "/appliance/data/batch",
        "/var/cache/huggingface",
    }
    assert mounts["/appliance/data/batch"]["source"].endswith("/data/batch")
    assert mounts["/run/appliance"]["source"].endswith("/data/run/serve") and mounts["/run/appliance"]["read_only"]
    assert mounts["/appliance/models"]["read_only"] is True
    assert not any(
        m["source"].rstrip("/").endswith(("/certs", "/data/run", "/data"))
        for m in mounts.values()
        if m["type"] == "bind"
    )
    env = serve["environment"]
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"].startswith("/run/appliance/")
    assert env["HF_TOKEN_PATH"].startswith("/run/appliance/") and "HF_TOKEN" not in env and "RAY_AUTH_TOKEN" not in env


def _datadog_key_is_a_file(agent: dict, secrets: dict) -> None:
    assert not agent.get("env_file") or all("datadog.env" in str(f.get("path", f)) for f in agent["env_file"])
    assert agent["environment"]["DD_API_KEY"] == "ENC[file@/run/secrets/datadog_api_key]"
    assert agent["environment"]["DD_SECRET_BACKEND_COMMAND"] == "/readsecret_multiple_providers.sh"
    assert {s["target"] for s in agent["secrets"]} == {"/run/secrets/datadog_api_key"}
    assert secrets["datadog_api_key"]["file"].endswith("/data/run/datadog_api_key")


def test_serve_user_follows_make_up() -> None:
    config = _config("compose/cpu.yml", APPLIANCE_SERVE_USER="10001:1000")
    assert config["services"]["serve"]["user"] == "10001:1000"


def test_up_with_another_env_file_publishes_its_ports(tmp_path) -> None:
    """``up --env other.env``: compose gets every value from that file's validated settings (through the stack
    plan and the one compose door), not from its own reading of the project's .env."""
    import shutil

    from appliance.cli import build_parser
    from appliance.commands.common import load
    from appliance.commands.up import stack_compose
    from appliance.stack.plan import plan_stack
    from tests.helpers import make_config_dir, set_line

    shutil.copyfile(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "compose", tmp_path / "compose", ignore=shutil.ignore_patterns("wheels"))
    make_config_dir(tmp_path)
    (tmp_path / "other.env").write_text((tmp_path / ".env").read_text())
    for key, value in {
        "BIND_ADDRESS": "0.0.0.0",
        "HTTP_PORT": "80",
        "HTTPS_PORT": "443",
        "PROMETHEUS_RETENTION_DAYS": "15",
        "DOMAIN": "stale.example.com",
    }.items():
        set_line(tmp_path / ".env", key, value)
    for key, value in {
        "BIND_ADDRESS": "127.0.0.1",
        "HTTP_PORT": "8080",
        "HTTPS_PORT": "8443",
        "PROMETHEUS_RETENTION_DAYS": "30",
        "DOMAIN": "llm.example.com",
    }.items():
        set_line(tmp_path / "other.env", key, value)
    args = build_parser().parse_args(
        ["up", "--env", str(tmp_path / "other.env"), "--secrets", str(tmp_path / ".secrets"), "--root", str(tmp_path)]
    )
    config = load(args)
    config_json = stack_compose(args, config, plan_stack(config, rendered={})).run("config", "--format", "json")
    services = json.loads(config_json)["services"]
    published = {(p["host_ip"], p["published"], p["target"]) for p in services["nginx"]["ports"]}
    assert published == {("127.0.0.1", "8080", 80), ("127.0.0.1", "8443", 443)}
    assert "--storage.tsdb.retention.time=30d" in services["prometheus"]["command"]
    assert services["grafana"]["environment"]["GF_SERVER_DOMAIN"] == "llm.example.com"
    print(f"published: {sorted(published)}")


CLUSTER_ENV = {
    "RAY_CLUSTER_INTERFACE": "eth1",
    "RAY_CLUSTER_SUBNET": "10.50.0.0/24",
    "RAY_CLUSTER_BIND": "10.50.0.10",
    "APPLIANCE_CLUSTER_GATEWAY": "10.50.0.11",
}


def test_cluster_mode_gives_serve_its_own_address_on_the_cluster_interface_and_publishes_nothing() -> None:
    config = _config("compose/cpu.yml", "compose/cluster.yml", **CLUSTER_ENV)
    services, network = config["services"], config["networks"]["cluster"]
    assert "ray-worker" not in services, "the worker runs only where join starts it (profile worker)"
    assert network["driver"] == "macvlan" and network["driver_opts"]["parent"] == "eth1"
    assert network["ipam"]["config"] == [
        {"subnet": "10.50.0.0/24", "ip_range": "10.50.0.10/32", "gateway": "10.50.0.11"}
    ]
    serve = services["serve"]
    assert serve["networks"]["cluster"]["ipv4_address"] == "10.50.0.10"
    assert serve["networks"]["serving"]["gw_priority"] == 1, "the default route must stay on the bridge"
    # liveness: a model away with its worker must not get the head restarted by its health check
    assert serve["healthcheck"]["test"] == ["CMD", "appliance-healthcheck", "/health/live"]
    assert not any(s.get("ports") for n, s in services.items() if n != "nginx")


def test_the_worker_service_runs_the_join_command_as_the_serve_user_with_only_its_token() -> None:
    config = _config(
        "compose/cpu.yml",
        "compose/cluster.yml",
        profiles=("worker",),
        APPLIANCE_RAY_WORKER_COMMAND="ray start --address=10.50.0.10:6379 --block --num-cpus=8",
        **{**CLUSTER_ENV, "RAY_CLUSTER_BIND": "10.50.0.20", "APPLIANCE_CLUSTER_GATEWAY": "10.50.0.21"},
    )
    worker = config["services"]["ray-worker"]
    assert worker["command"] == ["ray", "start", "--address=10.50.0.10:6379", "--block", "--num-cpus=8"]
    assert worker["image"] == "cfgtest-serve:latest" and worker["restart"] == "unless-stopped"
    assert str(worker["user"]).split(":")[0] not in ("", "0", "root")
    assert worker["environment"]["RAY_AUTH_MODE"] == "token"
    assert worker["environment"]["RAY_AUTH_TOKEN_PATH"] == "/run/appliance/ray_auth_token"
    mounts = {v["target"]: v for v in worker["volumes"]}
    assert set(mounts) == {"/run/appliance", "/appliance/models", "/var/cache/huggingface"}
    assert mounts["/run/appliance"]["source"].endswith("/data/run/worker") and mounts["/run/appliance"]["read_only"]
    assert worker["networks"]["cluster"]["ipv4_address"] == "10.50.0.20"
    assert worker["networks"]["egress"]["gw_priority"] == 1 and not worker.get("ports")
