"""The watchdog's memory across its own restarts: a small JSON file written atomically.

Per service: the times the watchdog restarted it, whether it gave up, whether the operator stopped it,
and a restart that was decided but not yet done (so a supervisor restarted mid-way resumes it once).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from appliance.atomic import write_atomic

_LOGGER = logging.getLogger(__name__)
KEEP_RESTARTS = 50


@dataclass
class Pending:
    container_id: str
    reason: str
    due: float  # epoch seconds
    decided_at: float


@dataclass
class ServiceRecord:
    restarts: list[float] = field(default_factory=list)  # epoch seconds
    gave_up: bool = False
    stopped_by_operator: bool = False
    pending: Pending | None = None

    def restart_times(self) -> tuple[datetime, ...]:
        return tuple(datetime.fromtimestamp(t, tz=UTC) for t in self.restarts)


class StateStore:
    """Load once, save after every change (atomic rename). A missing or corrupt file starts empty."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.services: dict[str, ServiceRecord] = {}
        if path is not None and path.exists():
            try:
                raw = json.loads(path.read_text())
                for name, item in raw.get("services", {}).items():
                    pending = Pending(**item["pending"]) if item.get("pending") else None
                    self.services[name] = ServiceRecord(
                        restarts=[float(t) for t in item.get("restarts", [])],
                        gave_up=bool(item.get("gave_up")),
                        stopped_by_operator=bool(item.get("stopped_by_operator")),
                        pending=pending,
                    )
            except (OSError, ValueError, KeyError, TypeError) as err:
                _LOGGER.warning("ignoring unreadable watchdog state %s: %s", path, err)

    def get(self, service: str) -> ServiceRecord:
        return self.services.setdefault(service, ServiceRecord())

    def save(self) -> None:
        if self.path is None:
            return
        for record in self.services.values():
            record.restarts = record.restarts[-KEEP_RESTARTS:]
        data = {"services": {name: asdict(rec) for name, rec in self.services.items()}}
        write_atomic(self.path, json.dumps(data, indent=1), mode=0o600)
