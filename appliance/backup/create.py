"""``backup``: one archive of what cannot be re-made, consistent while the stack runs.

Host files are read as they are; the registry is copied with SQLite's backup API; Grafana's volume is read
while its container is paused; Prometheus's TSDB is taken as an admin-API snapshot inside its container (a
stopped Prometheus is read as it lies). A part whose service is absent is noted, not failed.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import __version__
from appliance.backup.archive import ArchiveWriter, ChunkReader
from appliance.backup.manifest import FILES_PREFIX, Manifest, archives_to_delete, stale_partials
from appliance.backup.sources import PROMETHEUS, PROMETHEUS_LOCAL_URL, STACK_VOLUMES, HostPlan, StackVolume, copy_sqlite

if TYPE_CHECKING:
    from appliance.docker.model import ContainerState
    from appliance.docker.volumes import ContainerFiles

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    parts: tuple[str, ...]
    notes: tuple[str, ...]


def _own_like_parent(path: Path) -> None:
    """Run as root (the supervisor), the archive and a directory made for it go to whoever owns the directory
    above (the operator, who owns data/), not to root."""
    if os.geteuid() == 0:
        st = path.parent.stat()
        os.chown(path, st.st_uid, st.st_gid)


def _ensure_dest(dest: Path) -> None:
    if not dest.is_dir():
        dest.mkdir(parents=True, mode=0o700)
        _own_like_parent(dest)


def _add_volume(writer: ArchiveWriter, files: ContainerFiles, container: ContainerState, vol: StackVolume) -> str:
    """Take one stack volume into the archive; returns a note on how."""
    cid, running = container.id, container.status == "running"
    if vol is PROMETHEUS and running:
        name = files.prometheus_snapshot(cid, PROMETHEUS_LOCAL_URL)
        path = f"{vol.mount}/snapshots/{name}"
        try:
            writer.add_tar_stream(vol.volume, ChunkReader(files.export(cid, path)))
        finally:
            files.remove_path(cid, path)
        return "TSDB snapshot"
    if running:
        with files.paused(cid):
            writer.add_tar_stream(vol.volume, ChunkReader(files.export(cid, vol.mount)))
        return "read while paused"
    writer.add_tar_stream(vol.volume, ChunkReader(files.export(cid, vol.mount)))
    return "read from the stopped container"


def create_backup(
    root: Path,
    dest: Path,
    plan: HostPlan,
    *,
    project: str,
    now: datetime | None = None,
    docker: Callable[[], tuple[ContainerFiles, list[ContainerState]]] | None = None,
) -> BackupResult:
    """Write one archive into ``dest``. ``docker`` gives (ContainerFiles, the project's containers) when the
    volumes are to be included; None leaves them out (noted)."""
    now = now or datetime.now(tz=UTC)
    notes = list(plan.notes)
    parts: dict[str, tuple[str, ...]] = {k: v for k, v in plan.parts.items() if v}
    volumes: dict[str, str] = {}
    _ensure_dest(dest)
    with ArchiveWriter(dest, now) as writer, tempfile.TemporaryDirectory(prefix=".backup-", dir=dest) as tmp:

        def skip(rel: str) -> bool:
            return rel in plan.skipped

        for paths in parts.values():
            for rel in paths:
                writer.add_tree(root, rel, skip=skip)
        if plan.registry_db is not None:
            copy = Path(tmp) / "registry.db"
            copy_sqlite(root / plan.registry_db, copy)
            writer.add_host_file(FILES_PREFIX + plan.registry_db, copy)
        if docker is None:
            notes += [f"{v.part}: not included (no Docker access)" for v in STACK_VOLUMES]
        else:
            files, containers = docker()
            by_service = {c.service: c for c in containers}
            for vol in STACK_VOLUMES:
                container = by_service.get(vol.service)
                if container is None:
                    notes.append(f"{vol.part}: not included (the stack has no {vol.service} container)")
                    continue
                how = _add_volume(writer, files, container, vol)
                parts[vol.part], volumes[vol.part] = (vol.volume,), vol.volume
                _LOGGER.info("backup: %s volume %s (%s)", vol.part, vol.volume, how)
        manifest = Manifest(
            created=now.isoformat(),
            project=project,
            appliance_version=__version__,
            parts=parts,
            volumes=volumes,
            entries=tuple(writer.entries),
            notes=tuple(notes),
        )
        path = writer.finish(manifest)
    _own_like_parent(path)
    return BackupResult(path, path.stat().st_size, tuple(parts), tuple(notes))


def prune(dest: Path, keep: int, now: datetime | None = None) -> list[Path]:
    """Delete all but the ``keep`` newest archives in ``dest``, and unfinished ones a killed backup left behind
    (:func:`stale_partials`); nothing else there is touched."""
    names = [p.name for p in dest.iterdir() if p.is_file()]
    doomed = [dest / n for n in archives_to_delete(names, keep)]
    doomed += [dest / n for n in stale_partials(names, now or datetime.now(UTC))]
    for path in doomed:
        path.unlink(missing_ok=True)
        _LOGGER.info("backup retention: deleted %s", path.name)
    return doomed
