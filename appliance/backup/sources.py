"""What a backup holds, decided from the settings: host paths per part and the stack's volumes.

One source for the volumes a backup takes: ``STACK_VOLUMES`` (a unit test holds it to docker-compose.yml).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from appliance.backup.manifest import BackupError
from appliance.registry.db import Dialect, parse_registry_url

if TYPE_CHECKING:
    from appliance.config.settings import Settings


@dataclass(frozen=True)
class StackVolume:
    part: str
    volume: str  # the compose volume (docker-compose.yml `volumes:`)
    service: str  # the service that mounts it
    mount: str  # where it is mounted in that service


PROMETHEUS = StackVolume("prometheus", "prometheus-data", "prometheus", "/prometheus")
GRAFANA = StackVolume("grafana", "grafana-data", "grafana", "/var/lib/grafana")
STACK_VOLUMES = (PROMETHEUS, GRAFANA)
# Prometheus's API inside its container (docker-compose.yml: --web.route-prefix=/prometheus/)
PROMETHEUS_LOCAL_URL = "http://127.0.0.1:9090/prometheus"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class HostPlan:
    """Host paths per part (relative to the appliance's directory), the SQLite registry file among them."""

    parts: dict[str, tuple[str, ...]]
    registry_db: str | None = None
    notes: tuple[str, ...] = ()
    skipped: frozenset[str] = field(default_factory=frozenset)  # paths never copied as files


def _relative(path: str, root: Path) -> str | None:
    """``path`` as a clean relative POSIX path under ``root``; None when it lies elsewhere."""
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(root.resolve())
        except ValueError:
            return None
    clean = PurePosixPath(*p.parts).as_posix()
    return None if clean.startswith("..") or clean in ("", ".") else clean


def _outermost(paths: list[str]) -> tuple[str, ...]:
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path == k or path.startswith(k + "/") for k in kept):
            kept.append(path)
    return tuple(kept)


def plan_host(
    settings: Settings,
    root: Path,
    *,
    env_name: str = ".env",
    secrets_name: str = ".secrets",
    models_name: str = "models.yaml",
) -> HostPlan:
    """Decide (from the settings and what exists under ``root``) which host paths each part takes."""
    from appliance.certs.store import DEFAULT_CERTS_ROOT

    s = settings
    notes: list[str] = []
    parts: dict[str, tuple[str, ...]] = {}
    config = [n for n in (env_name, secrets_name, models_name) if (root / n).is_file()]
    parts["config"] = tuple(config)
    if (root / DEFAULT_CERTS_ROOT).is_dir():
        parts["certs"] = (DEFAULT_CERTS_ROOT.as_posix(),)
    state = _relative(str(Path(s.supervisor_state_file).parent), root)
    if state and (root / state).is_dir():
        parts["supervisor"] = (state,)
    registry_db: str | None = None
    location = parse_registry_url(s.registry_url)
    registry_paths: list[str] = []
    if location.dialect is Dialect.POSTGRESQL:
        notes.append("registry: PostgreSQL is not in this archive (back it up with pg_dump)")
    elif location.path is not None:
        rel = _relative(str(location.path), root)
        if rel is None:
            notes.append(f"registry: {location.path} lies outside the appliance's directory and is not included")
        elif (root / rel).is_file():
            registry_db = rel
            registry_paths.append(PurePosixPath(rel).parent.as_posix())
    manifests = _relative(s.registry_manifest_dir, root)
    if manifests and (root / manifests).is_dir():
        registry_paths.append(manifests)
    # the Batch API's files (inputs, outputs): the registry's batch rows point at them
    batch = _relative(s.batch_data_dir, root)
    if batch and (root / batch).is_dir():
        registry_paths.append(batch)
    if registry_paths:
        parts["registry"] = _outermost([p for p in registry_paths if p not in ("", ".")])
    skipped = frozenset([registry_db, *(registry_db + s for s in SQLITE_SIDECARS)] if registry_db else [])
    backup_dir = _relative(s.backup_dir, root)
    if backup_dir:  # never an archive inside the next archive
        skipped |= {backup_dir}
    return HostPlan(parts, registry_db, tuple(notes), skipped)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (WAL or not) with SQLite's online backup API, checked."""
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
                result = dst.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as err:
        raise BackupError(f"the registry {source} could not be copied: {err}") from err
    if result != "ok":
        raise BackupError(f"the copy of the registry {source} failed SQLite's check: {result}")
