"""The registry's store: revisions of deployed models, their status, and the history of every change.

Each change runs in one transaction: read the current status (locked), ask :func:`decide_transition`, update the
entry, append a history row. The history is never updated (migration 2 makes the database refuse it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from appliance.registry import migrations
from appliance.registry.db import (
    Database,
    Dialect,
    RegistryError,
    RegistryLocation,
    Row,
    Transaction,
    parse_registry_url,
)
from appliance.registry.states import INITIAL, Environment, Status, decide_transition

_LOGGER = logging.getLogger(__name__)


class TransitionRefused(RegistryError):
    """A status change the rules do not allow (nothing was written)."""


def timestamp(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class RevisionKey:
    """What makes a revision: the same model, environment, source, pinned revision, weights and engine args."""

    model_id: str
    environment: Environment
    source: str
    revision: str
    manifest_digest: str
    engine_digest: str


@dataclass(frozen=True)
class Entry:
    id: int
    model_id: str
    environment: Environment
    source: str
    revision: str
    manifest_digest: str
    engine_digest: str
    status: Status
    created_at: str
    changed_at: str
    last_health_check: str | None
    reason: str

    @classmethod
    def from_row(cls, row: Row) -> Entry:
        return cls(
            int(row["id"]),
            row["model_id"],
            Environment(row["environment"]),
            row["source"],
            row["revision"],
            row["manifest_digest"],
            row["engine_digest"],
            Status(row["status"]),
            row["created_at"],
            row["changed_at"],
            row["last_health_check"],
            row["reason"],
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(environment=self.environment.value, status=self.status.value)
        return data


@dataclass(frozen=True)
class Event:
    """One state change of one entry, as the history keeps it."""

    id: int
    entry_id: int
    model_id: str
    environment: Environment
    from_status: Status | None
    to_status: Status
    reason: str
    at: str

    @classmethod
    def from_row(cls, row: Row) -> Event:
        return cls(
            int(row["id"]),
            int(row["entry_id"]),
            row["model_id"],
            Environment(row["environment"]),
            Status(row["from_status"]) if row["from_status"] else None,
            Status(row["to_status"]),
            row["reason"],
            row["at"],
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            environment=self.environment.value,
            to_status=self.to_status.value,
            from_status=self.from_status.value if self.from_status else None,
        )
        return data


@dataclass(frozen=True)
class Route:
    """Which entry, served by which Ray Serve deployment, answers one model in one environment."""

    model_id: str
    environment: Environment
    entry_id: int
    deployment: str
    changed_at: str


_ENTRY_COLUMNS = (
    "id, model_id, environment, source, revision, manifest_digest, engine_digest, status, created_at, "
    "changed_at, last_health_check, reason"
)


class RegistryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, url: str) -> RegistryStore:
        """The store at ``url`` (REGISTRY_URL); ValueError from a malformed URL becomes a RegistryError."""
        try:
            location = parse_registry_url(url)
        except ValueError as err:
            raise RegistryError(f"REGISTRY_URL: expected {err}") from None
        return cls(Database(location))

    @property
    def location(self) -> RegistryLocation:
        return self.db.location

    # --- schema -----------------------------------------------------------------------------------------
    def version(self) -> int:
        with self.db.transaction() as tx:
            return migrations.current_version(tx)

    def migrate(self, target: int | None = None, *, now: datetime | None = None) -> list[tuple[int, bool]]:
        """Bring the schema to ``target`` (default: the newest), up or down; returns (version, up) per step."""
        goal = migrations.HEAD if target is None else target
        done: list[tuple[int, bool]] = []
        while True:
            with self.db.transaction() as tx:
                steps = migrations.plan(migrations.current_version(tx), goal)
                if not steps:
                    return done
                migration, up = steps[0]
                migrations.apply(tx, migration, up, timestamp(now or datetime.now(UTC)))
            _LOGGER.info(
                "registry schema %s %d (%s)", "up to" if up else "down from", migration.version, migration.name
            )
            done.append((migration.version, up))

    def ready(self) -> bool:
        """The registry exists and its schema is the newest this code knows (read-only commands check this)."""
        if not self.db.exists():
            return False
        with self.db.transaction(write=False) as tx:
            return migrations.current_version(tx, create=False) == migrations.HEAD

    # --- writes -----------------------------------------------------------------------------------------
    def record(self, key: RevisionKey, *, reason: str, now: datetime) -> Entry:
        """The entry for ``key``: created as pending when new; a failed or rolled-back one is set pending again;
        any other is returned as it is."""
        with self.db.transaction() as tx:
            row = tx.one(
                f"SELECT {_ENTRY_COLUMNS} FROM model_registry_entries WHERE model_id = ? AND environment = ? "
                "AND source = ? AND revision = ? AND manifest_digest = ? AND engine_digest = ?",
                _key_params(key),
            )
            if row is None:
                at = timestamp(now)
                row = tx.one(
                    "INSERT INTO model_registry_entries (model_id, environment, source, revision, manifest_digest, "
                    "engine_digest, status, created_at, changed_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    f"RETURNING {_ENTRY_COLUMNS}",
                    (*_key_params(key), INITIAL.value, at, at, reason),
                )
                assert row is not None
                entry = Entry.from_row(row)
                _append_history(tx, entry, None, reason, at)
                return entry
            entry = Entry.from_row(row)
            if entry.status in (Status.FAILED, Status.ROLLED_BACK):
                return _change(tx, entry, Status.PENDING, reason, now)
            return entry

    def transition(self, entry_id: int, target: Status, *, reason: str, now: datetime) -> Entry:
        """Change one entry's status when the rules allow it, with the history row; TransitionRefused if not."""
        with self.db.transaction() as tx:
            return _change(tx, self._locked(tx, entry_id), target, reason, now)

    def fill_manifest_digest(self, entry_id: int, digest: str) -> Entry | None:
        """Set the digest of an entry deployed before its weights were there to hash (a hub model's first
        download): once, only where it is empty (not a status change: no history row). None if it was not."""
        with self.db.transaction() as tx:
            row = tx.one(
                f"UPDATE model_registry_entries SET manifest_digest = ? WHERE id = ? AND manifest_digest = '' "
                f"RETURNING {_ENTRY_COLUMNS}",
                (digest, entry_id),
            )
        return Entry.from_row(row) if row else None

    def record_health_check(self, entry_id: int, *, now: datetime) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE model_registry_entries SET last_health_check = ? WHERE id = ?", (timestamp(now), entry_id)
            )

    # --- routes: which generation answers a model ---------------------------------------------------------
    def set_route(self, entry_id: int, deployment: str, *, now: datetime) -> None:
        """Point the entry's model and environment at ``deployment`` (serve's start records its generations)."""
        with self.db.transaction() as tx:
            entry = self._locked(tx, entry_id)
            _upsert_route(tx, entry, deployment, timestamp(now))

    def switch(self, new_id: int, old_id: int | None, deployment: str, *, reason: str, now: datetime) -> Entry:
        """One transaction: the new entry smoke-testing → ready, the old one ready → rolled-back (replaced), and
        the route pointed at the new generation's deployment. TransitionRefused (nothing written) if not allowed."""
        with self.db.transaction() as tx:
            new = _change(tx, self._locked(tx, new_id), Status.READY, reason, now)
            if old_id is not None and old_id != new_id:
                old = self._locked(tx, old_id)
                if old.status in (Status.READY, Status.DISABLED):
                    _change(tx, old, Status.ROLLED_BACK, f"replaced by entry {new_id}: {reason}", now)
            _upsert_route(tx, new, deployment, timestamp(now))
            return new

    def retire(self, entry_id: int, *, reason: str, now: datetime) -> Entry:
        """One transaction: the entry's model is no longer served in its environment (a deploy removed it): the
        entry ready/disabled → rolled-back (one never seen ready → failed), and its route removed."""
        with self.db.transaction() as tx:
            entry = self._locked(tx, entry_id)
            if entry.status in (Status.READY, Status.DISABLED):
                entry = _change(tx, entry, Status.ROLLED_BACK, reason, now)
            elif entry.status in (Status.PENDING, Status.LOADING, Status.SMOKE_TESTING):
                entry = _change(tx, entry, Status.FAILED, reason, now)
            tx.execute(
                "DELETE FROM model_registry_routes WHERE model_id = ? AND environment = ?",
                (entry.model_id, entry.environment.value),
            )
            return entry

    def save_spec(self, entry_id: int, spec: dict[str, Any]) -> None:
        """What the entry's generation is started from (its models.yaml entry); kept as first written."""
        with self.db.transaction() as tx:
            if tx.one("SELECT entry_id FROM model_registry_specs WHERE entry_id = ?", (entry_id,)) is None:
                tx.execute(
                    "INSERT INTO model_registry_specs (entry_id, spec) VALUES (?, ?)",
                    (entry_id, json.dumps(spec, sort_keys=True)),
                )

    def spec(self, entry_id: int) -> dict[str, Any] | None:
        with self.db.transaction(write=False) as tx:
            row = tx.one("SELECT spec FROM model_registry_specs WHERE entry_id = ?", (entry_id,))
        return json.loads(row["spec"]) if row else None

    def routes(self, environment: Environment | None = None) -> dict[tuple[str, Environment], Route]:
        """(model, environment) → the entry and deployment that answer it."""
        where, params = ("WHERE environment = ?", (environment.value,)) if environment else ("", ())
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT model_id, environment, entry_id, deployment, changed_at FROM model_registry_routes {where}",
                params,
            )
        routes = [
            Route(r["model_id"], Environment(r["environment"]), int(r["entry_id"]), r["deployment"], r["changed_at"])
            for r in rows
        ]
        return {(r.model_id, r.environment): r for r in routes}

    # --- reads ------------------------------------------------------------------------------------------
    def entry(self, entry_id: int) -> Entry | None:
        with self.db.transaction(write=False) as tx:
            row = tx.one(f"SELECT {_ENTRY_COLUMNS} FROM model_registry_entries WHERE id = ?", (entry_id,))
        return Entry.from_row(row) if row else None

    def entries(self, model_id: str | None = None) -> list[Entry]:
        """Every entry (of one model), oldest first."""
        where, params = ("WHERE model_id = ?", (model_id,)) if model_id else ("", ())
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(f"SELECT {_ENTRY_COLUMNS} FROM model_registry_entries {where} ORDER BY id", params)
        return [Entry.from_row(r) for r in rows]

    def current(self, model_id: str | None = None) -> list[Entry]:
        """Per model and environment, the entry changed last (what `models status` shows)."""
        latest: dict[tuple[str, Environment], Entry] = {}
        for entry in self.entries(model_id):
            key = (entry.model_id, entry.environment)
            if key not in latest or (entry.changed_at, entry.id) >= (latest[key].changed_at, latest[key].id):
                latest[key] = entry
        return sorted(latest.values(), key=lambda e: (e.model_id, e.environment.value))

    def history(self, model_id: str | None = None, *, entry_id: int | None = None) -> list[Event]:
        """Every state change (of one model or one entry), in the order they happened."""
        clauses: list[str] = []
        params: list[str | int] = []
        if model_id:
            clauses.append("model_id = ?")
            params.append(model_id)
        if entry_id is not None:
            clauses.append("entry_id = ?")
            params.append(entry_id)
        return self._events(clauses, params)

    def events_after(self, event_id: int, *, limit: int = 500) -> list[Event]:
        """The state changes recorded after history row ``event_id``, oldest first (at most ``limit``)."""
        return self._events(["id > ?"], [event_id], limit=limit)

    def last_event_id(self) -> int:
        """The id of the newest history row (0 when there is none)."""
        with self.db.transaction(write=False) as tx:
            row = tx.one("SELECT MAX(id) AS last FROM model_registry_history")
        return int(row["last"]) if row and row["last"] is not None else 0

    def _events(self, clauses: list[str], params: list[str | int], *, limit: int | None = None) -> list[Event]:
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        bounded = " LIMIT ?" if limit is not None else ""
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT id, entry_id, model_id, environment, from_status, to_status, reason, at "
                f"FROM model_registry_history {where} ORDER BY id{bounded}",
                [*params, *([limit] if limit is not None else [])],
            )
        return [Event.from_row(r) for r in rows]

    def _locked(self, tx: Transaction, entry_id: int) -> Entry:
        lock = " FOR UPDATE" if tx.dialect is Dialect.POSTGRESQL else ""  # SQLite: BEGIN IMMEDIATE locked it all
        row = tx.one(f"SELECT {_ENTRY_COLUMNS} FROM model_registry_entries WHERE id = ?{lock}", (entry_id,))
        if row is None:
            raise RegistryError(f"no registry entry {entry_id}: see python -m appliance models list")
        return Entry.from_row(row)


def _key_params(key: RevisionKey) -> tuple[str, ...]:
    return (key.model_id, key.environment.value, key.source, key.revision, key.manifest_digest, key.engine_digest)


def _change(tx: Transaction, entry: Entry, target: Status, reason: str, now: datetime) -> Entry:
    decision = decide_transition(entry.status, target)
    if not decision.allowed:
        raise TransitionRefused(f"model {entry.model_id} entry {entry.id}: {decision.reason}")
    at = timestamp(now)
    row = tx.one(
        f"UPDATE model_registry_entries SET status = ?, changed_at = ?, reason = ? WHERE id = ? "
        f"RETURNING {_ENTRY_COLUMNS}",
        (target.value, at, reason, entry.id),
    )
    assert row is not None
    _append_history(tx, entry, entry.status, reason, at, to_status=target)
    return Entry.from_row(row)


def _append_history(
    tx: Transaction, entry: Entry, from_status: Status | None, reason: str, at: str, *, to_status: Status | None = None
) -> None:
    tx.execute(
        "INSERT INTO model_registry_history (entry_id, model_id, environment, from_status, to_status, reason, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            entry.id,
            entry.model_id,
            entry.environment.value,
            from_status.value if from_status else None,
            (to_status or entry.status).value,
            reason,
            at,
        ),
    )


def _upsert_route(tx: Transaction, entry: Entry, deployment: str, at: str) -> None:
    tx.execute(
        "DELETE FROM model_registry_routes WHERE model_id = ? AND environment = ?",
        (entry.model_id, entry.environment.value),
    )
    tx.execute(
        "INSERT INTO model_registry_routes (model_id, environment, entry_id, deployment, changed_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (entry.model_id, entry.environment.value, entry.id, deployment, at),
    )
