"""Files inside the stack's containers and volumes, for backups: export a path, pause a writer, take a
Prometheus TSDB snapshot, and refill a named volume on a stopped stack.

Blocking calls (async callers use ``asyncio.to_thread``); SDK failures become ApplianceDockerError.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker.errors
import docker.types

from appliance.docker.engine import DockerEngine, _call
from appliance.docker.errors import ApplianceDockerError
from appliance.docker.model import PROJECT_LABEL

_LOGGER = logging.getLogger(__name__)
VOLUME_LABEL = "com.docker.compose.volume"
RESTORE_PARENT = "/appliance-restore"
# the volume is mounted here in a helper container; the tar put into RESTORE_PARENT has RESTORE_TOP as its top
# directory, so that directory entry (owner, mode) lands on the volume's root
RESTORE_TOP = "volume"


class ContainerFiles:
    """Reads and writes files of the containers and volumes of one Docker Engine."""

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine
        self._client = engine._client

    def export(self, container_id: str, path: str) -> Iterator[bytes]:
        """A tar stream of ``path`` in the container (running or stopped); its top entry is the path's name."""
        stream, _ = _call(
            f"reading {path} in {container_id[:12]}", lambda: self._client.api.get_archive(container_id, path)
        )
        return iter(stream)

    @contextmanager
    def paused(self, container_id: str) -> Iterator[None]:
        """The container frozen (its files consistent) for the block, unpaused after it whatever happens."""
        _call(f"pausing {container_id[:12]}", lambda: self._client.api.pause(container_id))
        try:
            yield
        finally:
            _call(f"unpausing {container_id[:12]}", lambda: self._client.api.unpause(container_id))

    def prometheus_snapshot(self, container_id: str, base_url: str) -> str:
        """POST the admin API's TSDB snapshot from inside the Prometheus container (the API is never reachable
        from outside the stack); returns the snapshot's directory name under the TSDB path."""
        url = f"{base_url.rstrip('/')}/api/v1/admin/tsdb/snapshot"
        code, output = self.engine.exec(container_id, ["curl", "-sS", "-XPOST", "--max-time", "600", url])
        try:
            body = json.loads(output)
            if code == 0 and body.get("status") == "success":
                return str(body["data"]["name"])
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        raise ApplianceDockerError(
            f"Prometheus refused the TSDB snapshot (exit {code}): {output.strip()[-300:]}",
            hint="is --web.enable-admin-api in docker-compose.yml? run python -m appliance up",
        )

    def remove_path(self, container_id: str, path: str) -> None:
        code, output = self.engine.exec(container_id, ["rm", "-rf", "--", path])
        if code != 0:
            raise ApplianceDockerError(f"could not remove {path} in {container_id[:12]}: {output.strip()[-300:]}")

    # --- volumes (restore) --------------------------------------------------------------------------
    def has_image(self, image: str) -> bool:
        try:
            self._client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.DockerException as err:
            raise ApplianceDockerError(f"looking up image {image}: {err}") from err
        return True

    def volume_exists(self, name: str) -> bool:
        try:
            self._client.volumes.get(name)
        except docker.errors.NotFound:
            return False
        except docker.errors.DockerException as err:
            raise ApplianceDockerError(f"looking up volume {name}: {err}") from err
        return True

    def refill_volume(self, project: str, volume: str, tar_path: Path, image: str) -> None:
        """Replace the compose volume ``<project>_<volume>`` with the tar at ``tar_path`` (its top directory is
        ``RESTORE_TOP``; owners and modes as archived). The volume is removed and made anew with Compose's
        labels, then filled through a container that is created, never started."""
        name = f"{project}_{volume}"
        if self.volume_exists(name):
            _call(f"removing volume {name}", lambda: self._client.volumes.get(name).remove())
        labels = {PROJECT_LABEL: project, VOLUME_LABEL: volume}
        _call(f"creating volume {name}", lambda: self._client.volumes.create(name=name, labels=labels))
        host_config = self._client.api.create_host_config(
            mounts=[docker.types.Mount(target=f"{RESTORE_PARENT}/{RESTORE_TOP}", source=name, type="volume")]
        )
        created = _call(
            f"creating a helper container for {name}",
            lambda: self._client.api.create_container(
                image, command=["true"], host_config=host_config, labels={"appliance.restore": name}
            ),
        )
        helper = created["Id"]
        try:
            with tar_path.open("rb") as data:
                ok = _call(
                    f"writing into volume {name}", lambda: self._client.api.put_archive(helper, RESTORE_PARENT, data)
                )
            if not ok:
                raise ApplianceDockerError(f"Docker did not take the files for volume {name}")
        finally:
            _call(
                f"removing the helper container of {name}",
                lambda: self._client.api.remove_container(helper, force=True),
            )
        _LOGGER.info("volume %s restored", name)
