"""Pure decisions of ``up``: the compose files and profiles for the config, and each service's config digest.

A service's digest covers exactly what it reads at start; it goes into the compose file as a label, so
``docker compose up`` recreates a service when, and only when, its digest changed ("only what changed
restarts"). API keys are not in any digest: the ingress reloads ``.secrets`` by itself, and nginx re-reads
its htpasswd file on every request.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from appliance.config.loader import ApplianceConfig
from appliance.config.settings import Accelerator

COMPOSE_FILE = "docker-compose.yml"
CPU_FILE = "compose/cpu.yml"
GPU_FILE = "compose/gpu.yml"
LOCAL_FILE = "compose/local.yml"
DATADOG_PROFILE = "datadog"
DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
# Settings the serve container reads (engines, Ray, ingress, audit, PII, its logging).
SERVE_SETTING_PREFIXES = ("model_", "accelerator", "ray_", "serve_", "auth_", "audit_", "pii_", "log_level",
                          "log_format", "max_request_body_mb", "compose_project_name")  # fmt: skip


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
    return digest(relevant, models, config.accelerator.value, bool(config.secrets.hf_token),
                  hashlib.sha256(config.secrets.hf_token.encode()).hexdigest())  # fmt: skip


def supervisor_digest(config: ApplianceConfig) -> str:
    """The supervisor reads every setting (watchdog, renewal, rotation, its in-stack doctor)."""
    models = [m.model_dump(mode="json") for m in config.models]
    return digest(config.settings.model_dump(mode="json"), models, bool(config.secrets.datadog_api_key))


def files_digest(files: Mapping[str, bytes]) -> str:
    return digest({name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())})


def plan_stack(config: ApplianceConfig, *, rendered: Mapping[str, Mapping[str, bytes]], local: bool = False,
               base_image: str = DEFAULT_BASE_IMAGE, docker_socket: str = "/var/run/docker.sock") -> StackPlan:  # fmt: skip
    """Which files and profiles, and the variables ``docker compose`` interpolates (see docker-compose.yml).

    ``rendered``: the files written for nginx and prometheus (``{"nginx": {name: bytes}, "prometheus": …}``).
    """
    files = [COMPOSE_FILE, GPU_FILE if config.accelerator is Accelerator.GPU else CPU_FILE]
    if local:
        files.append(LOCAL_FILE)
    profiles = [DATADOG_PROFILE] if config.secrets.datadog_api_key else []
    env = {
        "COMPOSE_PROJECT_NAME": config.settings.compose_project_name,
        "APPLIANCE_BASE_IMAGE": base_image,
        "APPLIANCE_PIP_OFFLINE": "1" if local else "0",
        "APPLIANCE_DOCKER_SOCKET": docker_socket,
        "APPLIANCE_SERVE_CONFIG_HASH": serve_digest(config),
        "APPLIANCE_SUPERVISOR_CONFIG_HASH": supervisor_digest(config),
        "APPLIANCE_NGINX_CONFIG_HASH": files_digest(rendered.get("nginx", {})),
        "APPLIANCE_PROMETHEUS_CONFIG_HASH": files_digest(rendered.get("prometheus", {})),
    }
    return StackPlan(tuple(files), tuple(profiles), env)


def socket_path(docker_host: str | None) -> str:
    """The Engine's unix socket on the host, for the supervisor's bind mount: --docker-host, else DOCKER_HOST,
    else /var/run/docker.sock."""
    docker_host = docker_host or os.environ.get("DOCKER_HOST")
    if docker_host and docker_host.startswith("unix://"):
        return docker_host[len("unix://"):]
    return "/var/run/docker.sock"


def api_urls(config: ApplianceConfig) -> dict[str, str]:
    """Where a user reaches the stack: the API, Grafana, Prometheus (through nginx)."""
    s = config.settings
    host = s.domain or ("127.0.0.1" if s.bind_address in ("0.0.0.0", "::", "") else s.bind_address)
    port = "" if s.https_port == 443 else f":{s.https_port}"
    base = f"https://{host}{port}"
    return {"api": f"{base}/v1", "grafana": f"{base}/grafana/", "prometheus": f"{base}/prometheus/",
            "health": f"{base}/health/ready"}  # fmt: skip


def local_health_url(config: ApplianceConfig, path: str = "/health/startup") -> str:
    """The startup probe ``up`` polls on this machine (nginx's published HTTPS port)."""
    s = config.settings
    host = "127.0.0.1" if s.bind_address in ("0.0.0.0", "::", "") else s.bind_address
    return f"https://{host}:{s.https_port}{path}"
