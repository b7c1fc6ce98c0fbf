"""Render nginx's configuration from the validated config: one ``nginx.conf`` plus the ``htpasswd`` file.

Pure: ``render_nginx`` takes the typed config and an :class:`NginxLayout` (where things are, as nginx sees
them, and the upstream addresses) and returns file contents (``appliance.stack.render`` writes them).
The compose stack uses the layout's defaults (service names ``serve:8000``, ``grafana:3000`` …); tests
point the upstreams and listeners at local processes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from appliance.certs.store import CHAIN, FULLCHAIN, PRIVKEY, CertPaths
from appliance.config.loader import ApplianceConfig
from appliance.config.render import template
from appliance.config.render.htpasswd import htpasswd_line
from appliance.stack.plan import api_urls

_LOGGER = logging.getLogger(__name__)

NGINX_DIR = Path(__file__).resolve().parents[3] / "nginx"
# Addresses the exporter (and the Datadog agent) reach stub_status from: loopback and private networks.
STATUS_ALLOWED = ("127.0.0.1", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


@dataclass(frozen=True)
class Upstreams:
    """host:port of each service behind nginx (compose service names by default)."""

    serve: str = "serve:8000"
    grafana: str = "grafana:3000"
    prometheus: str = "prometheus:9090"
    ray_dashboard: str = "serve:8265"


@dataclass(frozen=True)
class NginxLayout:
    """Where nginx finds things and listens — paths as nginx sees them (inside its container by default)."""

    conf_dir: Path = Path("/etc/nginx/appliance")  # the rendered nginx.conf, htpasswd and apikey.js
    cert_dir: Path = Path("/etc/appliance/certs")  # live/<name>/fullchain.pem, privkey.pem
    acme_webroot: Path = Path("/var/www/acme")
    run_dir: Path = Path("/var/run/nginx-appliance")  # pid file and temp dirs
    error_log: str = "stderr"
    access_log: str = "/dev/stdout"
    http_listen: str = "80"
    https_listen: str = "443"
    status_listen: str = "8081"
    module_dir: Path = Path("/usr/lib/nginx/modules")
    worker_user: str = "www-data"  # the account nginx's workers run as (tests: root, for private temp dirs)
    resolver: str = "127.0.0.11"  # Docker's embedded DNS (OCSP responder look-ups)
    upstreams: Upstreams = field(default_factory=Upstreams)

    def with_upstreams(self, **addresses: str) -> NginxLayout:
        return replace(self, upstreams=replace(self.upstreams, **addresses))


@dataclass(frozen=True)
class RenderedNginx:
    """File name → content; all three go into ``layout.conf_dir``."""

    files: Mapping[str, str]

    @property
    def conf(self) -> str:
        return self.files["nginx.conf"]


def redirect_origin(config: ApplianceConfig) -> str:
    """Where port 80 sends a request (``https://name[:port]``): never the client's ``Host`` header.

    With a DOMAIN that name (the ``server_name``), with the published HTTPS_PORT when it is not 443. Without
    one there is no public name to send a client to, so the redirect names the address ``up`` prints for the
    API (``api_urls``: BIND_ADDRESS when it is a single address, else 127.0.0.1): right on this machine, and a
    client elsewhere gets a fixed address instead of one an attacker's ``Host`` header chose. Set DOMAIN for a
    redirect that works from everywhere.
    """
    url = urlsplit(api_urls(config)["api"])
    return f"https://{url.netloc}"


def retry_after_seconds(rpm: int) -> int:
    """Seconds until the limiter frees one more request at ``rpm`` per minute (at least 1)."""
    return max(1, math.ceil(60 / rpm))


def datadog_enabled(config: ApplianceConfig) -> bool:
    return bool(config.secrets.datadog_api_key)


def render_nginx(
    config: ApplianceConfig,
    layout: NginxLayout = NginxLayout(),
    *,
    ocsp: bool = False,
    templates: Path = NGINX_DIR,
    htpasswd_salt: str | None = None,
) -> RenderedNginx:
    """The rendered files. ``ocsp``: the certificate names an OCSP responder (see certs.inspect)."""
    s = config.settings
    live = CertPaths(layout.cert_dir).served_dir(s)

    def read(rel: str) -> str:
        return template.load(templates, rel)

    common = {
        "burst": s.nginx_rate_limit_burst,
        "read_timeout": "3600s",
        "htpasswd_file": layout.conf_dir / "htpasswd",
        "upstream_serve": layout.upstreams.serve,
        "upstream_grafana": layout.upstreams.grafana,
        "upstream_prometheus": layout.upstreams.prometheus,
        "upstream_ray_dashboard": layout.upstreams.ray_dashboard,
    }

    def sub(rel: str, **extra: object) -> str:
        return template.render_text(read(rel), {**common, **extra}, name=rel)

    proxy = sub("snippets/proxy.conf")
    api_headers = sub("snippets/security_headers.conf", frame_options="DENY", frame_ancestors="'none'")
    dash_headers = sub("snippets/security_headers.conf", frame_options="SAMEORIGIN", frame_ancestors="'self'")
    dashboards = ""
    if s.dashboards_enabled:
        dashboards += sub("snippets/dashboards.conf", snippet_dashboard_headers=dash_headers, snippet_proxy=proxy)
    if s.ray_dashboard_enabled:
        dashboards += sub("snippets/ray_dashboard.conf", snippet_dashboard_headers=dash_headers, snippet_proxy=proxy)
    maps = sub("snippets/maps.conf", njs_file=layout.conf_dir / "apikey.js")
    cors = ""
    if s.cors_allowed_origins:
        maps += _cors_maps(read("snippets/cors_maps.conf"), s.cors_allowed_origins)
        cors = sub("snippets/cors.conf")
    values = {
        **common,
        "load_modules": f"load_module {layout.module_dir / 'ngx_http_js_module.so'};",
        "user_directive": f"user {layout.worker_user};",
        "pid_file": layout.run_dir / "nginx.pid",
        "error_log": layout.error_log,
        "access_log": layout.access_log,
        "temp_dir": layout.run_dir,
        "log_extra": _log_extra(config),
        "snippet_maps": maps,
        "snippet_ratelimit": sub(
            "snippets/ratelimit.conf", rpm=s.nginx_rate_limit_rpm, login_rpm=s.nginx_login_rate_limit_rpm
        ),
        "snippet_tls": read("snippets/tls.conf"),
        "http_listen": layout.http_listen,
        "https_listen": layout.https_listen,
        "status_listen": layout.status_listen,
        "server_name": s.domain or "_",
        "acme_webroot": layout.acme_webroot,
        "https_origin": redirect_origin(config),
        "cert_file": live / FULLCHAIN,
        "key_file": live / PRIVKEY,
        "ocsp": sub("snippets/ocsp.conf", chain_file=live / CHAIN) if ocsp else "",
        "resolver": layout.resolver,
        "max_body": f"{s.max_request_body_mb}m",
        "max_body_mib": s.max_request_body_mb,
        "files_max_body": f"{s.batch_file_max_mb + 1}m",  # the file plus its multipart framing
        "files_max_mib": s.batch_file_max_mb,
        "conn_limit": s.nginx_conn_limit,
        "retry_after": retry_after_seconds(s.nginx_rate_limit_rpm),
        "retry_after_login": retry_after_seconds(s.nginx_login_rate_limit_rpm),
        "snippet_security_headers": api_headers,
        "snippet_cors": cors,
        "snippet_proxy": proxy,
        "dashboards": dashboards,
        "status_allow": "\n".join(f"            allow {net};" for net in STATUS_ALLOWED),
    }
    conf = template.render_text(read("nginx.conf.template"), values, name="nginx.conf.template")
    template.assert_fully_rendered(conf, name="nginx.conf")
    secrets = config.secrets
    htpasswd = ""
    if secrets.dashboard_password:
        htpasswd = htpasswd_line(secrets.dashboard_user, secrets.dashboard_password, salt=htpasswd_salt)
    else:
        _LOGGER.warning("DASHBOARD_PASSWORD is empty: the basic-auth dashboards refuse every login")
    return RenderedNginx({"nginx.conf": conf, "htpasswd": htpasswd, "apikey.js": read("njs/apikey.js")})


def _cors_maps(text: str, origins: list[str]) -> str:
    if "*" in origins:  # any origin, and then never credentials
        lines = '        default "*";'
        text = text.replace('        default "";\n', "")
    else:
        lines = "\n".join(f'        "{origin}" $http_origin;' for origin in origins)
    return template.render_text(text, {"origins": lines}, name="snippets/cors_maps.conf")


def _log_extra(config: ApplianceConfig) -> str:
    if not datadog_enabled(config):
        return ""
    env = config.settings.datadog_env.replace('"', "")
    return f',"service":"nginx","env":"{env}"'
