"""Docker failures as the project's own exceptions (the SDK's never leave appliance.docker)."""

from __future__ import annotations

from appliance.errors import ApplianceError


class ApplianceDockerError(ApplianceError):
    """A Docker Engine call failed. ``hint`` says what to do about it."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.hint = hint
        super().__init__(f"{message}{f' ({hint})' if hint else ''}")


class DockerUnreachableError(ApplianceDockerError):
    """The engine's socket does not answer."""


class ContainerGoneError(ApplianceDockerError):
    """The container was removed between two calls."""


class ComposeError(ApplianceDockerError):
    """``docker compose`` is missing or exited non-zero."""
