"""Change requests: what the CLI or the admin API asked for (deploy, promote, roll back), queued in the registry
for the one process that talks to Ray Serve (the serve container's head) to apply, then its outcome.

A request goes ``pending → running → done | failed``; :meth:`ChangeRequests.claim` takes the oldest pending one
in one transaction, so two appliers never take the same request. The payload and the result are JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appliance.registry.db import Row
from appliance.registry.states import Environment
from appliance.registry.store import RegistryStore, timestamp

_COLUMNS = "id, kind, environment, model_id, payload, status, result, requested_by, created_at, changed_at"


@dataclass(frozen=True)
class ChangeRequest:
    id: int
    kind: str  # deploy | promote | rollback
    environment: Environment
    model_id: str  # "" for a deploy of every model
    payload: dict[str, Any]
    status: str  # pending | running | done | failed
    result: dict[str, Any]
    requested_by: str
    created_at: str
    changed_at: str

    @classmethod
    def from_row(cls, row: Row) -> ChangeRequest:
        return cls(
            int(row["id"]),
            row["kind"],
            Environment(row["environment"]),
            row["model_id"],
            json.loads(row["payload"] or "{}"),
            row["status"],
            json.loads(row["result"] or "{}"),
            row["requested_by"],
            row["created_at"],
            row["changed_at"],
        )

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "environment": self.environment.value,
            "model_id": self.model_id,
            "status": self.status,
            "result": self.result,
            "requested_by": self.requested_by,
            "created_at": self.created_at,
            "changed_at": self.changed_at,
        }


class ChangeRequests:
    def __init__(self, store: RegistryStore) -> None:
        self.store = store

    def submit(
        self,
        kind: str,
        environment: Environment,
        payload: dict[str, Any],
        *,
        model_id: str = "",
        requested_by: str = "",
        now: datetime,
    ) -> ChangeRequest:
        at = timestamp(now)
        with self.store.db.transaction() as tx:
            row = tx.one(
                f"INSERT INTO model_registry_requests (kind, environment, model_id, payload, status, "
                f"requested_by, created_at, changed_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?) "
                f"RETURNING {_COLUMNS}",
                (kind, environment.value, model_id, json.dumps(payload, sort_keys=True), requested_by, at, at),
            )
        assert row is not None
        return ChangeRequest.from_row(row)

    def claim(self, *, now: datetime) -> ChangeRequest | None:
        """The oldest pending request, now running (None: nothing to do)."""
        with self.store.db.transaction() as tx:
            row = tx.one("SELECT id FROM model_registry_requests WHERE status = 'pending' ORDER BY id LIMIT 1")
            if row is None:
                return None
            claimed = tx.one(
                f"UPDATE model_registry_requests SET status = 'running', changed_at = ? WHERE id = ? "
                f"AND status = 'pending' RETURNING {_COLUMNS}",
                (timestamp(now), row["id"]),
            )
        return ChangeRequest.from_row(claimed) if claimed else None

    def finish(self, request_id: int, *, ok: bool, result: dict[str, Any], now: datetime) -> ChangeRequest:
        with self.store.db.transaction() as tx:
            row = tx.one(
                f"UPDATE model_registry_requests SET status = ?, result = ?, changed_at = ? WHERE id = ? "
                f"RETURNING {_COLUMNS}",
                (
                    "done" if ok else "failed",
                    json.dumps(result, sort_keys=True, default=str),
                    timestamp(now),
                    request_id,
                ),
            )
        assert row is not None, f"no change request {request_id}"
        return ChangeRequest.from_row(row)

    def abandon_running(self, *, reason: str, now: datetime) -> int:
        """At the applier's start: requests a previous process left running are failed (it died mid-change)."""
        with self.store.db.transaction() as tx:
            rows = tx.execute(
                "UPDATE model_registry_requests SET status = 'failed', result = ?, changed_at = ? "
                "WHERE status = 'running' RETURNING id",
                (json.dumps({"ok": False, "reason": reason}), timestamp(now)),
            )
        return len(rows)

    def get(self, request_id: int) -> ChangeRequest | None:
        with self.store.db.transaction(write=False) as tx:
            row = tx.one(f"SELECT {_COLUMNS} FROM model_registry_requests WHERE id = ?", (request_id,))
        return ChangeRequest.from_row(row) if row else None
