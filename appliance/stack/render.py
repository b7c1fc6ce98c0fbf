"""Write what the stack's containers mount from ``data/run/``: nginx's and Prometheus's rendered files,
Grafana's admin password, the Datadog agent's environment. Files are rewritten only when their content
changes (so a second ``make up`` changes nothing), secrets with mode 0600.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from appliance.certs.inspect import ocsp_stapling_possible
from appliance.certs.renewal import DEFAULT_CERTS_ROOT
from appliance.config.loader import ApplianceConfig
from appliance.config.render.htpasswd import htpasswd_line
from appliance.config.render.nginx import NGINX_DIR, NginxLayout, cert_name, render_nginx
from appliance.config.render.prometheus import alertmanager_config, prometheus_config, slo_rules

PROMETHEUS_DIR = NGINX_DIR.parent / "prometheus"
RUN_DIR = Path("data/run")
CERTS_DIR = DEFAULT_CERTS_ROOT


def _existing_salt(path: Path, user: str, password: str) -> str | None:
    """The salt of the htpasswd line already on disk when it still matches the password (no churn)."""
    try:
        line = path.read_text().strip()
    except OSError:
        return None
    name, _, crypted = line.partition(":")
    parts = crypted.split("$")  # ['', '6', 'rounds=N', salt, hash]
    if name != user or len(parts) != 5:
        return None
    return parts[3] if htpasswd_line(user, password, salt=parts[3]).strip() == line else None


def nginx_files(config: ApplianceConfig, run_dir: Path = RUN_DIR, certs_dir: Path = CERTS_DIR) -> dict[str, bytes]:
    layout = NginxLayout()
    secrets = config.secrets
    ocsp = ocsp_stapling_possible(certs_dir / "live" / cert_name(config))
    salt = _existing_salt(run_dir / "nginx" / "htpasswd", secrets.dashboard_user, secrets.dashboard_password)
    rendered = render_nginx(config, layout, ocsp=ocsp, htpasswd_salt=salt)
    return {name: text.encode() for name, text in rendered.files.items()}


def prometheus_files(config: ApplianceConfig, shipped: Path = PROMETHEUS_DIR) -> dict[str, bytes]:
    files = {"prometheus.yml": prometheus_config((shipped / "prometheus.yml").read_text(), config.accelerator),
             "alertmanager.yml": alertmanager_config((shipped / "alertmanager.yml").read_text(), config.settings)}  # fmt: skip
    for rule in sorted((shipped / "rules").glob("*.yml")):
        files[f"rules/{rule.name}"] = rule.read_text()
    files["rules/slo.yml"] = slo_rules(config.settings)
    return {name: text.encode() for name, text in files.items()}


def datadog_env(config: ApplianceConfig, version: str) -> bytes:
    """The agent's environment file: the key from .secrets, site/env/tags from .env (empty when no key)."""
    s = config.settings
    if not config.secrets.datadog_api_key:
        return b"# no DATADOG_API_KEY in .secrets: the datadog-agent service is not started\n"
    lines = [f"DD_API_KEY={config.secrets.datadog_api_key}", f"DD_SITE={s.datadog_site}", f"DD_ENV={s.datadog_env}",
             f"DD_TAGS={' '.join(s.datadog_tags)}", f"DD_VERSION={version}", "DD_SERVICE=appliance",
             "DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true", "DD_LOGS_ENABLED=true"]  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Atomically replace ``path`` with ``data`` unless it already holds exactly that; True when written."""
    try:
        if path.read_bytes() == data:
            if (path.stat().st_mode & 0o777) != mode:
                path.chmod(mode)
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def render_run_dir(config: ApplianceConfig, *, version: str, run_dir: Path = RUN_DIR,
                   certs_dir: Path = CERTS_DIR) -> dict[str, Mapping[str, bytes]]:  # fmt: skip
    """Write data/run/ for the stack; returns the rendered files per service (for the config digests)."""
    rendered = {"nginx": nginx_files(config, run_dir, certs_dir), "prometheus": prometheus_files(config)}
    for service, files in rendered.items():
        for name, data in files.items():
            secret = name == "htpasswd"
            written = run_dir / service / name
            write_if_changed(written, data, 0o640 if secret else 0o644)
            if secret:
                _readable_by_nginx(written)
    write_if_changed(run_dir / "grafana_admin_password", config.secrets.grafana_admin_password.encode(), 0o600)
    write_if_changed(run_dir / "datadog.env", datadog_env(config, version), 0o600)
    for directory in (Path(config.settings.log_dir), certs_dir / "acme-webroot"):
        directory.mkdir(parents=True, exist_ok=True)
    return rendered


WWW_DATA_GID = 33  # www-data in Debian (nginx's workers, in the nginx image)


def _readable_by_nginx(path: Path) -> None:
    """htpasswd stays 0640; its group becomes www-data so nginx's workers can read it in the container."""
    if os.geteuid() == 0:
        os.chown(path, -1, WWW_DATA_GID)
    else:
        path.chmod(0o644)  # a non-root host cannot chgrp to www-data; the file holds only a salted hash
