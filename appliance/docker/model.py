"""Plain data about containers, built from the SDK's inspect output (no SDK types leave appliance.docker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# Optional per-service override of the watchdog's start period (seconds), e.g. for slow model loading.
START_PERIOD_LABEL = "appliance.watchdog.start-period"
# A service with this label set to "false" is never restarted by the watchdog.
WATCH_LABEL = "appliance.watchdog"
# `docker compose run` containers (e.g. `make up`'s model-cache ownership fix): one-offs, never a service's state.
ONEOFF_LABEL = "com.docker.compose.oneoff"


def is_oneoff(labels: dict[str, str]) -> bool:
    return labels.get(ONEOFF_LABEL, "False").lower() == "true"


@dataclass(frozen=True)
class ContainerState:
    """What the watchdog and doctor need to know about one container."""

    id: str
    name: str
    service: str
    status: str  # created | running | paused | restarting | removing | exited | dead
    health: str | None  # starting | healthy | unhealthy | None (no healthcheck)
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int
    start_period_s: float
    restart_count: int
    labels: dict[str, str] = field(default_factory=dict)
    published_ports: tuple[int, ...] = ()
    restart_policy: str = "unless-stopped"  # HostConfig.RestartPolicy.Name: no | always | unless-stopped | on-failure

    @property
    def stopped_by_hand(self) -> bool:
        """Exited although Docker's restart policy brings back a crash: only a manual stop (docker stop/kill,
        compose stop) leaves it so. Under ``no`` or ``on-failure`` an exit is not evidence of a manual stop."""
        return self.status == "exited" and self.restart_policy in ("always", "unless-stopped")

    @property
    def watched(self) -> bool:
        return self.labels.get(WATCH_LABEL, "true").lower() != "false"

    @property
    def running_and_healthy(self) -> bool:
        return self.status == "running" and self.health in (None, "healthy")

    @property
    def not_failing(self) -> bool:
        """Running and not failing its health check: still ``starting`` (inside its start period, loading a
        model) counts as not failing, so a gauge built on it does not call a starting service unhealthy."""
        return self.status == "running" and self.health != "unhealthy"


def parse_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 timestamps (nanoseconds, 'Z'); the zero time is None."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.rstrip("Z")
    main, _, frac = text.partition(".")
    frac = "".join(ch for ch in frac if ch.isdigit())[:6]
    stamp = datetime.fromisoformat(main + (f".{frac}" if frac else ""))
    return stamp.replace(tzinfo=UTC)


def state_from_inspect(attrs: dict[str, Any]) -> ContainerState:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    labels = dict(config.get("Labels") or {})
    health = (state.get("Health") or {}).get("Status")
    start_period = ((config.get("Healthcheck") or {}).get("StartPeriod") or 0) / 1e9
    if START_PERIOD_LABEL in labels:
        try:
            start_period = float(labels[START_PERIOD_LABEL])
        except ValueError:
            pass
    return ContainerState(
        id=attrs["Id"],
        name=str(attrs.get("Name", "")).lstrip("/"),
        service=labels.get(SERVICE_LABEL, ""),
        status=state.get("Status", "unknown"),
        health=health,
        started_at=parse_time(state.get("StartedAt")),
        finished_at=parse_time(state.get("FinishedAt")),
        exit_code=int(state.get("ExitCode") or 0),
        start_period_s=start_period,
        restart_count=int(attrs.get("RestartCount") or 0),
        labels=labels,
        published_ports=_published(attrs),
        restart_policy=str(((attrs.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"),
    )


def _published(attrs: dict[str, Any]) -> tuple[int, ...]:
    ports = ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).values()
    return tuple(sorted({int(b["HostPort"]) for bindings in ports for b in (bindings or []) if b.get("HostPort")}))


@dataclass(frozen=True)
class ContainerEvent:
    """One Docker event about a container of the project."""

    action: str  # die | stop | kill | start | health_status: unhealthy | destroy | ...
    container_id: str
    service: str
    time: datetime
    attributes: dict[str, str]

    @property
    def kind(self) -> str:
        """``health_status: unhealthy`` → ``unhealthy``; other actions unchanged."""
        if self.action.startswith("health_status"):
            return self.action.split(":", 1)[1].strip()
        return self.action


def event_from_raw(raw: dict[str, Any]) -> ContainerEvent | None:
    if raw.get("Type") != "container":
        return None
    actor = raw.get("Actor") or {}
    attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
    nanos = raw.get("timeNano")
    stamp = datetime.fromtimestamp(nanos / 1e9 if nanos else float(raw.get("time", 0)), tz=UTC)
    return ContainerEvent(
        action=str(raw.get("Action") or raw.get("status") or ""),
        container_id=str(actor.get("ID") or raw.get("id") or ""),
        service=attributes.get(SERVICE_LABEL, ""),
        time=stamp,
        attributes=attributes,
    )
