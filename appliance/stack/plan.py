"""Pure decisions of ``up``: the compose files and profiles for the config, and each service's config digest.

A service's digest covers exactly what it reads at start; it goes into the compose file as a label, so
``docker compose up`` recreates a service when, and only when, its digest changed ("only what changed
restarts"). API keys are not in any digest: the ingress reloads its key file by itself, and nginx re-reads
its htpasswd file on every request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from appliance.cluster.network import ClusterNetwork, cluster_network
from appliance.config.loader import ApplianceConfig
from appliance.config.settings import Accelerator, Settings
from appliance.stack.pii_model import gliner_build_args

COMPOSE_FILE = "docker-compose.yml"
CPU_FILE = "compose/cpu.yml"
GPU_FILE = "compose/gpu.yml"
LOCAL_FILE = "compose/local.yml"
CLUSTER_FILE = "compose/cluster.yml"
WORKER_PROFILE = "worker"
WORKER_SERVICE = "ray-worker"
WORKER_RUN_SUBDIR = "worker"  # data/run/worker: what the worker container reads (the head's token, the HF token)
DATADOG_PROFILE = "datadog"
DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
# The serve container's user (compose/serve/Dockerfile) and the files `make up` renders for it: data/run/serve
# on the host, mounted read-only at SERVE_MOUNT. It sees nothing else of the project but models/ and the logs.
SERVE_UID = 10001
SERVE_RUN_SUBDIR = "serve"
SERVE_MOUNT = "/run/appliance"
SERVE_SETTINGS = "settings.env"  # a copy of .env (no secrets live there)
SERVE_MODELS = "models.yaml"  # a copy of models.yaml, when there is one
SERVE_API_KEYS = "api_keys"  # the API_KEY_* lines of .secrets: hashes, roles, models; nothing else
SERVE_RAY_TOKEN = "ray_auth_token"  # Ray's control-plane token (RAY_AUTH_TOKEN_PATH)
SERVE_HF_TOKEN = "hf_token"  # the Hugging Face token (HF_TOKEN_PATH), absent when there is none
# Files whose change must recreate serve: Ray's processes read the token at start (a new one locks out the old
# cluster's workers). The API keys are reloaded live; settings and models go through serve_digest.
SERVE_RESTART_FILES = (SERVE_RAY_TOKEN,)
# Settings the serve container reads (engines, Ray, ingress, audit, PII, its logging).
SERVE_SETTING_PREFIXES = (
    "model_",
    "accelerator",
    "ray_",
    "serve_",
    "auth_",
    "audit_",
    "pii_",
    "log_level",
    "log_format",
    "max_request_body_mb",
    "compose_project_name",
)


@dataclass(frozen=True)
class StackPlan:
    files: tuple[str, ...]
    profiles: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


def digest(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def serve_digest(config: ApplianceConfig) -> str:
    settings = config.settings.model_dump(mode="json")
    relevant = {k: v for k, v in settings.items() if k.startswith(SERVE_SETTING_PREFIXES)}
    models = [m.model_dump(mode="json") for m in config.models]
    return digest(
        relevant,
        models,
        config.accelerator.value,
        bool(config.secrets.hf_token),
        hashlib.sha256(config.secrets.hf_token.encode()).hexdigest(),
    )


def supervisor_digest(config: ApplianceConfig) -> str:
    """The supervisor reads every setting (watchdog, renewal, rotation, its in-stack doctor)."""
    models = [m.model_dump(mode="json") for m in config.models]
    return digest(config.settings.model_dump(mode="json"), models, bool(config.secrets.datadog_api_key))


def files_digest(files: Mapping[str, bytes]) -> str:
    return digest({name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())})


def compose_settings(settings: Settings) -> dict[str, str]:
    """The settings docker-compose.yml interpolates, from the validated settings under their ``.env`` names.

    ``up``/``down``/``logs`` export them to ``docker compose`` (over the process's environment, which wins over
    Compose's own reading of ``.env``), so the file given with ``--env`` is the one that counts, validated.
    """
    s = settings
    return {
        "BIND_ADDRESS": s.bind_address,
        "HTTP_PORT": str(s.http_port),
        "HTTPS_PORT": str(s.https_port),
        "DOMAIN": s.domain,
        "SUPERVISOR_METRICS_PORT": str(s.supervisor_metrics_port),
        "PROMETHEUS_RETENTION_DAYS": str(s.prometheus_retention_days),
    }


def plan_stack(
    config: ApplianceConfig,
    *,
    rendered: Mapping[str, Mapping[str, bytes]],
    local: bool = False,
    base_image: str = DEFAULT_BASE_IMAGE,
    docker_socket: str = "/var/run/docker.sock",
    euid: int | None = None,
    egid: int | None = None,
) -> StackPlan:
    """Which files and profiles, and every variable ``docker compose`` interpolates (see docker-compose.yml).

    ``rendered``: the files written for the services (``{"nginx": {name: bytes}, "prometheus": …, "serve": …}``).
    ``euid``/``egid``: who runs ``make up`` (default: this process).
    """
    files = [COMPOSE_FILE, GPU_FILE if config.accelerator is Accelerator.GPU else CPU_FILE]
    if local:
        files.append(LOCAL_FILE)
    network = cluster_network(config.settings)
    if network is not None:
        files.append(CLUSTER_FILE)
    profiles = [DATADOG_PROFILE] if config.secrets.datadog_api_key else []
    env = {
        **compose_settings(config.settings),
        "COMPOSE_PROJECT_NAME": config.settings.compose_project_name,
        "APPLIANCE_BASE_IMAGE": base_image,
        "APPLIANCE_PIP_OFFLINE": "1" if local else "0",
        "APPLIANCE_DOCKER_SOCKET": docker_socket,
        "APPLIANCE_SERVE_CONFIG_HASH": digest(
            serve_digest(config),
            files_digest({n: d for n, d in rendered.get("serve", {}).items() if n in SERVE_RESTART_FILES}),
        ),
        "APPLIANCE_SERVE_USER": serve_user(
            euid if euid is not None else os.geteuid(), egid if egid is not None else os.getegid()
        ),
        "APPLIANCE_SUPERVISOR_CONFIG_HASH": supervisor_digest(config),
        "APPLIANCE_NGINX_CONFIG_HASH": files_digest(rendered.get("nginx", {})),
        "APPLIANCE_PROMETHEUS_CONFIG_HASH": files_digest(rendered.get("prometheus", {})),
        **gliner_build_args(config.settings),
        **(cluster_env(network) if network is not None else {}),
    }
    return StackPlan(tuple(files), tuple(profiles), env)


def without_cluster(plan: StackPlan) -> StackPlan:
    """The plan for a one-off container of serve's image (``compose run``): without compose/cluster.yml, which
    gives serve its one fixed address on the cluster network (a second container with it fails to start)."""
    return StackPlan(tuple(f for f in plan.files if f != CLUSTER_FILE), plan.profiles, plan.env)


def cluster_env(network: ClusterNetwork) -> dict[str, str]:
    """What compose/cluster.yml interpolates: the interface, subnet and this node's address, and a gateway for
    Docker's IPAM. Docker reserves a gateway address in every network it makes; the cluster network carries no
    default route (the bridge networks do), so any other host address serves: the one after this node's (before
    it, at the top of the subnet). Per node, so that nodes sharing one Docker Engine (tests) never ask for the
    same one."""
    subnet = ipaddress.ip_network(network.subnet)
    bind = ipaddress.ip_address(network.bind)
    after = bind + 1
    gateway = after if after in subnet and after != subnet.broadcast_address else bind - 1
    return {
        "RAY_CLUSTER_INTERFACE": network.interface,
        "RAY_CLUSTER_SUBNET": network.subnet,
        "RAY_CLUSTER_BIND": network.bind,
        "APPLIANCE_CLUSTER_GATEWAY": str(gateway),
    }


def worker_env(argv: list[str], settings: Settings) -> dict[str, str]:
    """What compose/cluster.yml's ray-worker interpolates besides the plan: its ``ray start`` and niceness."""
    return {
        "APPLIANCE_RAY_WORKER_COMMAND": shlex.join(argv),
        "APPLIANCE_RAY_WORKER_NICENESS": str(settings.ray_worker_niceness),
    }


def serve_gid(euid: int, egid: int) -> int:
    """The serve container's group: its own when ``make up`` runs as root (which can give files that group),
    else the group of the user running it (who owns data/run/serve and data/logs, and cannot chgrp to another)."""
    return SERVE_UID if euid == 0 else egid


def serve_user(euid: int, egid: int) -> str:
    """``user:`` of the serve container: never root, whoever runs ``make up``."""
    return f"{SERVE_UID}:{serve_gid(euid, egid)}"


def socket_path(docker_host: str | None) -> str:
    """The Engine's unix socket on the host, for the supervisor's bind mount: --docker-host, else DOCKER_HOST,
    else /var/run/docker.sock."""
    docker_host = docker_host or os.environ.get("DOCKER_HOST")
    if docker_host and docker_host.startswith("unix://"):
        return docker_host[len("unix://") :]
    return "/var/run/docker.sock"


def api_urls(config: ApplianceConfig) -> dict[str, str]:
    """Where a user reaches the stack: the API, Grafana, Prometheus (through nginx)."""
    s = config.settings
    host = s.domain or ("127.0.0.1" if s.bind_address in ("0.0.0.0", "::", "") else s.bind_address)
    port = "" if s.https_port == 443 else f":{s.https_port}"
    base = f"https://{host}{port}"
    return {
        "api": f"{base}/v1",
        "grafana": f"{base}/grafana/",
        "prometheus": f"{base}/prometheus/",
        "health": f"{base}/health/ready",
    }


def local_health_url(config: ApplianceConfig, path: str = "/health/startup") -> str:
    """The startup probe ``up`` polls on this machine (nginx's published HTTPS port)."""
    s = config.settings
    host = "127.0.0.1" if s.bind_address in ("0.0.0.0", "::", "") else s.bind_address
    return f"https://{host}:{s.https_port}{path}"
