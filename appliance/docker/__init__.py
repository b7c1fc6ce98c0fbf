"""The only code that imports the Docker SDK or runs ``docker compose``.

``engine.DockerEngine`` wraps the SDK for one compose project's containers (label
``com.docker.compose.project``) and the events stream; ``compose.ComposeCli`` runs the Compose v2 CLI.
Every SDK or CLI failure is raised as :class:`ApplianceDockerError` (or a subclass).
"""

from appliance.docker.errors import ApplianceDockerError, ComposeError, DockerUnreachableError

__all__ = ["ApplianceDockerError", "ComposeError", "DockerUnreachableError"]
