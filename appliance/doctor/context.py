"""What every check may read: the loaded config (or why it failed), where the engine is, the stack's URLs."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from appliance.certs.store import DEFAULT_CERTS_ROOT, served_certificate
from appliance.config import ApplianceConfig, ConfigFiles
from appliance.config.issues import ConfigIssue


@dataclass(frozen=True)
class StackEndpoint:
    """A URL of the running stack and how to ask it (TLS trust, credentials)."""

    url: str
    context: ssl.SSLContext | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class DoctorContext:
    files: ConfigFiles
    config: ApplianceConfig | None
    config_issues: list[ConfigIssue] = field(default_factory=list)
    preflight: bool = False  # only the checks that need no running stack
    docker_host: str | None = None
    # None: the way the host reaches them, through nginx's published HTTPS port (only nginx publishes ports)
    health_url: str | None = None
    prometheus_url: str | None = None
    model_cache: Path | None = None  # the Hugging Face hub cache (default: HF_HUB_CACHE / HF_HOME / ~/.cache)
    certs_root: Path = DEFAULT_CERTS_ROOT  # the certificate area (live/<name>/…)
    now: datetime = field(default_factory=lambda: datetime.now(tz=UTC))

    def health_endpoint(self) -> StackEndpoint | None:
        """/health/ready: the given URL, else through nginx (None without a config to tell where nginx is)."""
        if self.health_url is not None:
            return StackEndpoint(self.health_url)
        if self.config is None:
            return None
        tls = _appliance_tls(self.config, self.certs_root)
        return StackEndpoint(_through_nginx(self.config, "/health/ready"), tls)

    def prometheus_endpoint(self) -> StackEndpoint | None:
        """Prometheus's base URL: the given one, else /prometheus behind nginx with the dashboard login (None
        without a config, or when DASHBOARDS_ENABLED=false leaves it unpublished)."""
        if self.prometheus_url is not None:
            return StackEndpoint(self.prometheus_url.rstrip("/"))
        if self.config is None or not self.config.settings.dashboards_enabled:
            return None
        secrets = self.config.secrets
        token = base64.b64encode(f"{secrets.dashboard_user}:{secrets.dashboard_password}".encode()).decode()
        tls = _appliance_tls(self.config, self.certs_root)
        return StackEndpoint(_through_nginx(self.config, "/prometheus"), tls, (("Authorization", f"Basic {token}"),))


def _through_nginx(config: ApplianceConfig, path: str) -> str:
    from appliance.stack.plan import local_health_url  # the one owner of nginx's address on this host

    return local_health_url(config, path)


def _appliance_tls(config: ApplianceConfig, certs_root: Path) -> ssl.SSLContext:
    """Trust for our own nginx on loopback: the system's CAs and the certificate it serves (a self-signed one
    is its own anchor). The address is 127.0.0.1 while the certificate names DOMAIN: no host name check."""
    context = ssl.create_default_context()
    context.check_hostname = False
    cert = served_certificate(config.settings, certs_root)
    if cert.is_file():
        try:
            context.load_verify_locations(cafile=str(cert))
        except (OSError, ssl.SSLError):
            pass  # the check then reports the TLS failure it meets
    return context
