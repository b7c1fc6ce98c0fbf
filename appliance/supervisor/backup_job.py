"""The nightly backup: at BACKUP_HOUR_UTC, one archive into BACKUP_DIR, then retention (BACKUP_KEEP).

When to run is decided purely (``appliance.backup.manifest.seconds_until``) and what to keep too
(``archives_to_delete``); this module only acts, and reports to ``appliance_backup_last_ok`` (1 until a
backup fails: a fresh stack fires nothing) and the time and size of the last good one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.backup.create import create_backup, prune
from appliance.backup.manifest import seconds_until
from appliance.backup.sources import plan_host
from appliance.errors import ApplianceError
from appliance.telemetry.notifier import SupervisorNotifier

_LOGGER = logging.getLogger(__name__)


class BackupJob:
    def __init__(self, config: Any, notifier: SupervisorNotifier, *, root: Path, docker_host: str | None) -> None:
        self.config, self.notifier, self.root, self.docker_host = config, notifier, root, docker_host

    async def __call__(self) -> None:
        await asyncio.to_thread(self.run_once)

    def run_once(self) -> bool:
        from appliance.docker.engine import DockerEngine
        from appliance.docker.volumes import ContainerFiles

        s, files = self.config.settings, self.config.files
        dest = self.root / s.backup_dir
        try:
            plan = plan_host(
                s, self.root, env_name=files.env.name, secrets_name=files.secrets.name, models_name=files.models.name
            )
            with DockerEngine(self.docker_host, timeout=600) as engine:
                result = create_backup(
                    self.root,
                    dest,
                    plan,
                    project=s.compose_project_name,
                    docker=lambda: (ContainerFiles(engine), engine.project_containers(s.compose_project_name)),
                )
            deleted = prune(dest, s.backup_keep)
        except (ApplianceError, OSError) as err:  # the job's boundary: report, alert, try again tomorrow
            _LOGGER.error("nightly backup failed: %s", err)
            self.notifier.backup(False, None)
            return False
        _LOGGER.info(
            "nightly backup written: %s (%d bytes; %d old archive(s) deleted; notes: %s)",
            result.path.name,
            result.size,
            len(deleted),
            "; ".join(result.notes) or "none",
        )
        self.notifier.backup(True, result.size)
        return True


async def nightly(
    hour_utc: int,
    job: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    now: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
) -> None:
    """Run ``job`` every day at ``hour_utc``:00 UTC until ``stop``; a failing run is logged, the next one comes."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds_until(now(), hour_utc))
            return
        except TimeoutError:
            pass
        try:
            await job()
        except Exception:  # the scheduler's boundary
            _LOGGER.exception("the nightly backup job failed")
