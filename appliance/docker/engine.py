"""The Docker SDK, for one compose project's containers and the engine's events.

Blocking calls; async callers go through ``asyncio.to_thread``. Every SDK failure becomes an
:class:`ApplianceDockerError` with a hint.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from appliance.docker.errors import ApplianceDockerError, ContainerGoneError, DockerUnreachableError
from appliance.docker.model import (
    PROJECT_LABEL,
    ContainerEvent,
    ContainerState,
    event_from_raw,
    is_oneoff,
    state_from_inspect,
)

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
UNREACHABLE_HINT = "is dockerd running? check DOCKER_HOST and the socket's permissions (docker group)"


def _call(what: str, fn: Callable[[], _T]) -> _T:
    try:
        return fn()
    except docker.errors.NotFound as err:
        raise ContainerGoneError(f"{what}: not found", hint="it was removed; docker compose up recreates it") from err
    except docker.errors.APIError as err:
        raise ApplianceDockerError(f"{what}: {err.explanation or err}") from err
    except docker.errors.DockerException as err:
        raise DockerUnreachableError(f"{what}: {err}", hint=UNREACHABLE_HINT) from err
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, OSError) as err:
        raise DockerUnreachableError(
            f"{what}: the Docker Engine did not answer ({err})", hint=UNREACHABLE_HINT
        ) from err


class DockerEngine:
    """A connection to one Docker Engine (``base_url`` or DOCKER_HOST, else the default socket)."""

    def __init__(self, base_url: str | None = None, *, timeout: float = 10.0) -> None:
        self.base_url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            self._client: docker.DockerClient = _call(
                "connecting to Docker",
                lambda: docker.DockerClient(base_url=self.base_url, timeout=max(1, round(timeout))),
            )
        except DockerUnreachableError as err:
            raise DockerUnreachableError(f"no Docker Engine answers at {self.base_url}", hint=UNREACHABLE_HINT) from err

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- engine -----------------------------------------------------------------------------------
    def ping(self) -> bool:
        return bool(_call("ping", self._client.ping))

    def version(self) -> dict[str, Any]:
        return dict(_call("docker version", self._client.version))

    def info(self) -> dict[str, Any]:
        return dict(_call("docker info", self._client.info))

    # --- containers of a project ------------------------------------------------------------------
    def project_containers(self, project: str) -> list[ContainerState]:
        """Every container (running or not) labelled with the compose project."""
        containers = _call(
            f"listing containers of project {project!r}",
            lambda: self._client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"}),
        )
        states = [state_from_inspect(c.attrs) for c in containers]
        return [state for state in states if not is_oneoff(state.labels)]

    def inspect(self, container_id: str) -> ContainerState:
        attrs = _call(f"inspecting {container_id[:12]}", lambda: self._client.api.inspect_container(container_id))
        return state_from_inspect(attrs)

    def restart(self, container_id: str, *, timeout: int = 10) -> None:
        _call(f"restarting {container_id[:12]}", lambda: self._client.api.restart(container_id, timeout=timeout))

    def start(self, container_id: str) -> None:
        _call(f"starting {container_id[:12]}", lambda: self._client.api.start(container_id))

    def kill(self, container_id: str, signal: str = "SIGKILL") -> None:
        _call(f"killing {container_id[:12]}", lambda: self._client.api.kill(container_id, signal=signal))

    def exec(self, container_id: str, argv: list[str]) -> tuple[int, str]:
        """Run ``argv`` inside a running container; (exit code, combined output)."""
        result = _call(
            f"exec in {container_id[:12]}",
            lambda: self._client.containers.get(container_id).exec_run(argv, demux=False),
        )
        return int(result.exit_code or 0), (result.output or b"").decode(errors="replace")

    # --- events -----------------------------------------------------------------------------------
    def events(self, project: str, *, since: datetime | None = None) -> EventStream:
        """Container events of the project, from ``since`` (default now) on; blocking iterator."""
        filters = {"type": "container", "label": f"{PROJECT_LABEL}={project}"}
        kwargs: dict[str, Any] = {"decode": True, "filters": filters}
        if since is not None:
            kwargs["since"] = since
        stream = _call("subscribing to Docker events", lambda: self._client.events(**kwargs))
        return EventStream(stream)


class EventStream:
    """Iterates :class:`ContainerEvent`; ``close()`` from another thread ends the iteration."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __iter__(self) -> Iterator[ContainerEvent]:
        try:
            for item in self._raw:
                event = event_from_raw(item)
                if event is not None and not is_oneoff(event.attributes):
                    yield event
        except (requests.exceptions.ConnectionError, OSError, docker.errors.DockerException) as err:
            raise DockerUnreachableError(f"the events stream broke ({err})", hint=UNREACHABLE_HINT) from err
        except AttributeError:  # the SDK's response is closed under it by close(): the stream ended
            return

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
