"""Images of the local Docker Engine: what a built image says about itself (its labels)."""

from __future__ import annotations

import docker.errors

from appliance.docker.engine import DockerEngine
from appliance.docker.errors import ApplianceDockerError


def image_labels(engine: DockerEngine, image: str) -> dict[str, str] | None:
    """The labels of ``image``; None when there is no such image here."""
    try:
        attrs = engine._client.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.DockerException as err:
        raise ApplianceDockerError(f"inspecting image {image}: {err}") from err
    return dict((attrs.get("Config") or {}).get("Labels") or {})
