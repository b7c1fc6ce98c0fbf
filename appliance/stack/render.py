"""Write what the stack's containers mount from ``data/run/``: nginx's and Prometheus's rendered files,
Grafana's admin password, the Datadog agent's environment and API key file, and ``data/run/serve/`` — all the
serve container sees of the configuration (settings, models, API key hashes, the Ray and HF tokens; mode 0640,
group = the serve container's). Files are rewritten only when their content changes (so a second ``make up``
changes nothing), secrets with mode 0600.
"""

from __future__ import annotations

import os
import secrets as _random
from collections.abc import Mapping
from pathlib import Path

from appliance.atomic import write_atomic
from appliance.certs.inspect import ocsp_stapling_possible
from appliance.certs.store import DEFAULT_CERTS_ROOT, CertPaths
from appliance.cluster.network import cluster_network
from appliance.config.loader import ApplianceConfig
from appliance.config.render.htpasswd import htpasswd_line
from appliance.config.render.nginx import NGINX_DIR, NginxLayout, render_nginx
from appliance.config.render.prometheus import alertmanager_config, prometheus_config, slo_rules
from appliance.config.secrets import ApiKeyRecord
from appliance.stack.pii_model import serve_spacy_model, with_setting
from appliance.stack.plan import (
    SERVE_API_KEYS,
    SERVE_HF_TOKEN,
    SERVE_MODELS,
    SERVE_RAY_TOKEN,
    SERVE_RUN_SUBDIR,
    SERVE_SETTINGS,
    serve_gid,
)

PROMETHEUS_DIR = NGINX_DIR.parent / "prometheus"
RUN_DIR = Path("data/run")
CERTS_DIR = DEFAULT_CERTS_ROOT
MODELS_DIR = Path("models")  # local weights, mounted read-only into serve at /appliance/models


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
    ocsp = ocsp_stapling_possible(CertPaths(certs_dir).served_dir(config.settings))
    salt = _existing_salt(run_dir / "nginx" / "htpasswd", secrets.dashboard_user, secrets.dashboard_password)
    rendered = render_nginx(config, layout, ocsp=ocsp, htpasswd_salt=salt)
    return {name: text.encode() for name, text in rendered.files.items()}


def prometheus_files(config: ApplianceConfig, shipped: Path = PROMETHEUS_DIR) -> dict[str, bytes]:
    files = {
        "prometheus.yml": prometheus_config(
            (shipped / "prometheus.yml").read_text(),
            config.accelerator,
            cluster=cluster_network(config.settings) is not None,
            node=config.settings.ray_node_name,
        ),
        "alertmanager.yml": alertmanager_config((shipped / "alertmanager.yml").read_text(), config.settings),
    }
    for rule in sorted((shipped / "rules").glob("*.yml")):
        files[f"rules/{rule.name}"] = rule.read_text()
    files["rules/slo.yml"] = slo_rules(config.settings)
    return {name: text.encode() for name, text in files.items()}


def datadog_env(config: ApplianceConfig, version: str) -> bytes:
    """The agent's environment file: site/env/tags from .env (empty when no key). The key itself is not in it: it
    goes to the agent as a file (:func:`datadog_api_key_file`, a compose secret)."""
    s = config.settings
    if not config.secrets.datadog_api_key:
        return b"# no DATADOG_API_KEY in .secrets: the datadog-agent service is not started\n"
    lines = [
        f"DD_SITE={s.datadog_site}",
        f"DD_ENV={s.datadog_env}",
        f"DD_TAGS={' '.join(s.datadog_tags)}",
        f"DD_VERSION={version}",
        "DD_SERVICE=appliance",
        "DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true",
        "DD_LOGS_ENABLED=true",
    ]
    return ("\n".join(lines) + "\n").encode()


def datadog_api_key_file(config: ApplianceConfig) -> bytes:
    """The key alone, no newline (the agent's ENC[file@…] helper reads the whole file)."""
    return config.secrets.datadog_api_key.encode()


def api_key_lines(records: tuple[ApiKeyRecord, ...]) -> bytes:
    """The API_KEY_* lines of .secrets and nothing else: what the serve container's ingress checks keys against."""
    header = "# API key hashes from .secrets, rendered by make up and keys create|revoke; do not edit\n"
    return (header + "".join(f"{r.env_key}={r.to_env_value()}\n" for r in records)).encode()


def serve_files(config: ApplianceConfig, run_dir: Path = RUN_DIR, *, local: bool = False) -> dict[str, bytes]:
    """What the serve container reads, in data/run/serve/. Ray's token is made once and kept (serve is recreated
    when it changes); the HF token file is there only when HF_TOKEN is set. ``local``: the local images' spaCy
    model replaces the default one they do not carry (appliance.stack.pii_model)."""
    files = {SERVE_SETTINGS: config.files.env.read_bytes(), SERVE_API_KEYS: api_key_lines(config.secrets.api_keys)}
    spacy_model = serve_spacy_model(config.settings.pii_spacy_model, local=local)
    if config.settings.pii_enabled and spacy_model != config.settings.pii_spacy_model:
        files[SERVE_SETTINGS] = with_setting(files[SERVE_SETTINGS], "PII_SPACY_MODEL", spacy_model)
    if config.models_from_yaml:
        files[SERVE_MODELS] = config.files.models.read_bytes()
    if config.secrets.hf_token:
        files[SERVE_HF_TOKEN] = config.secrets.hf_token.encode()
    try:
        token = (run_dir / SERVE_RUN_SUBDIR / SERVE_RAY_TOKEN).read_bytes()
    except OSError:
        token = b""
    files[SERVE_RAY_TOKEN] = token if len(token.strip()) >= 32 else _random.token_hex(32).encode()
    return files


def write_serve_files(files: dict[str, bytes], run_dir: Path = RUN_DIR) -> None:
    """data/run/serve/ holds exactly ``files``, readable by the serve container's group only."""
    # models from .env again, HF_TOKEN removed
    write_private_files(files, run_dir / SERVE_RUN_SUBDIR, optional=(SERVE_MODELS, SERVE_HF_TOKEN))


def write_private_files(
    files: dict[str, bytes], directory: Path, *, optional: tuple[str, ...] = (SERVE_HF_TOKEN,)
) -> None:
    """``directory`` holds ``files``, readable by the serve image's group only; an ``optional`` file not among them
    is removed (data/run/serve, or a worker machine's data/run/worker: the head's Ray token, the HF token)."""
    directory.mkdir(parents=True, exist_ok=True)
    _serve_group(directory, 0o750)
    for name, data in files.items():
        write_if_changed(directory / name, data, 0o640)
        _serve_group(directory / name, 0o640)
    for stale in optional:
        if stale not in files:
            (directory / stale).unlink(missing_ok=True)


def refresh_api_keys(records: tuple[ApiKeyRecord, ...], run_dir: Path) -> bool:
    """Rewrite the serve container's key file after ``keys create|revoke``, when ``make up`` made one there;
    the ingress reloads it within a second. True when there was one to refresh."""
    path = run_dir / SERVE_RUN_SUBDIR / SERVE_API_KEYS
    if not path.parent.is_dir():
        return False
    write_if_changed(path, api_key_lines(records), 0o640)
    _serve_group(path, 0o640)
    return True


def _serve_group(path: Path, mode: int) -> None:
    """The serve container's group may read it (root can give it that group; anyone else already has it)."""
    euid = os.geteuid()
    if euid == 0:
        os.chown(path, -1, serve_gid(euid, os.getegid()))
    if (path.stat().st_mode & 0o7777) != mode:
        path.chmod(mode)


def prepare_models_dir(models_dir: Path) -> None:
    """Local weights under models/ are read by the serve container's user (not root): its group may read them
    (directories: enter). Files whose mode this user cannot change are left as they are."""
    models_dir.mkdir(parents=True, exist_ok=True)
    for path in [models_dir, *models_dir.rglob("*")]:
        if path.is_symlink():
            continue
        try:
            mode = path.stat().st_mode & 0o7777
            _serve_group(path, mode | (0o050 if path.is_dir() else 0o040))
        except PermissionError:
            continue


REGISTRY_DIR = Path("data/registry")  # the default SQLite registry and the manifests; serve writes both
BATCH_DIR = Path("data/batch")  # Batch API files (docker-compose.yml mounts it for serve, which writes it)


def prepare_log_dir(log_dir: Path) -> None:
    """The serve container (not root) writes here (the audit log; the registry's database and manifests): the
    directories are its group's (setgid, so new files are too), and files an older root-run serve left get the
    group's write bit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    _serve_group(log_dir, 0o2770)
    if os.geteuid() != 0:
        return
    for path in log_dir.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir():
            _serve_group(path, 0o2770)
        elif path.is_file():
            _serve_group(path, (path.stat().st_mode & 0o777) | 0o060)


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Atomically replace ``path`` with ``data`` unless it already holds exactly that; True when written."""
    try:
        if path.read_bytes() == data:
            if (path.stat().st_mode & 0o777) != mode:
                path.chmod(mode)
            return False
    except OSError:
        pass
    write_atomic(path, data, mode=mode)
    return True


def render_run_dir(
    config: ApplianceConfig, *, version: str, run_dir: Path = RUN_DIR, certs_dir: Path = CERTS_DIR, local: bool = False
) -> dict[str, Mapping[str, bytes]]:
    """Write data/run/ for the stack; returns the rendered files per service (for the config digests)."""
    rendered: dict[str, Mapping[str, bytes]] = {
        "nginx": nginx_files(config, run_dir, certs_dir),
        "prometheus": prometheus_files(config),
    }
    for service, files in rendered.items():
        for name, data in files.items():
            secret = name == "htpasswd"
            written = run_dir / service / name
            write_if_changed(written, data, 0o640 if secret else 0o644)
            if secret:
                _readable_by_nginx(written)
    write_if_changed(run_dir / "grafana_admin_password", config.secrets.grafana_admin_password.encode(), 0o600)
    write_if_changed(run_dir / "datadog.env", datadog_env(config, version), 0o600)
    write_if_changed(run_dir / "datadog_api_key", datadog_api_key_file(config), 0o600)
    rendered["serve"] = serve_files(config, run_dir, local=local)
    write_serve_files(dict(rendered["serve"]), run_dir)
    for writable in (Path(config.settings.log_dir), REGISTRY_DIR, BATCH_DIR):
        prepare_log_dir(writable)
    prepare_models_dir(MODELS_DIR)
    (certs_dir / "acme-webroot").mkdir(parents=True, exist_ok=True)
    return rendered


WWW_DATA_GID = 33  # www-data in Debian (nginx's workers, in the nginx image)


def _readable_by_nginx(path: Path) -> None:
    """htpasswd stays 0640; its group becomes www-data so nginx's workers can read it in the container."""
    if os.geteuid() == 0:
        os.chown(path, -1, WWW_DATA_GID)
    else:
        path.chmod(0o644)  # a non-root host cannot chgrp to www-data; the file holds only a salted hash
