"""The registry's schema as numbered migrations, each with its way up and its way down, per dialect.

``registry_schema`` holds one row per applied migration; the schema's version is the highest. A migration runs
in one transaction with its row, so a version is either fully applied or not at all (PostgreSQL and SQLite
both have transactional DDL). Never edit a released migration: add the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.registry.db import Dialect, Transaction
from appliance.registry.states import Environment, Status

VERSION_TABLE = """CREATE TABLE IF NOT EXISTS registry_schema (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"""


def _in(values: list[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


_STATUSES = _in([s.value for s in Status])
_ENVIRONMENTS = _in([e.value for e in Environment])


def _entries(id_column: str) -> str:
    # Times are ISO 8601 text in UTC on both dialects: one schema, and they sort as text.
    return f"""CREATE TABLE model_registry_entries (
    id {id_column},
    model_id TEXT NOT NULL,
    environment TEXT NOT NULL CHECK (environment IN {_ENVIRONMENTS}),
    source TEXT NOT NULL,
    revision TEXT NOT NULL DEFAULT '',
    manifest_digest TEXT NOT NULL DEFAULT '',
    engine_digest TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN {_STATUSES}),
    created_at TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    last_health_check TEXT,
    reason TEXT NOT NULL DEFAULT '',
    UNIQUE (model_id, environment, source, revision, manifest_digest, engine_digest))"""


def _history(id_column: str) -> str:
    return f"""CREATE TABLE model_registry_history (
    id {id_column},
    entry_id INTEGER NOT NULL REFERENCES model_registry_entries (id),
    model_id TEXT NOT NULL,
    environment TEXT NOT NULL,
    from_status TEXT CHECK (from_status IN {_STATUSES}),
    to_status TEXT NOT NULL CHECK (to_status IN {_STATUSES}),
    reason TEXT NOT NULL,
    at TEXT NOT NULL)"""


_SQLITE_ID = "INTEGER PRIMARY KEY AUTOINCREMENT"
_POSTGRES_ID = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: dict[Dialect, tuple[str, ...]]
    down: dict[Dialect, tuple[str, ...]]


_INDEXES = (
    "CREATE INDEX model_registry_entries_model ON model_registry_entries (model_id, environment, changed_at)",
    "CREATE INDEX model_registry_history_model ON model_registry_history (model_id, at)",
    "CREATE INDEX model_registry_history_entry ON model_registry_history (entry_id, id)",
)
_DROP_TABLES = ("DROP TABLE model_registry_history", "DROP TABLE model_registry_entries")

_PG_APPEND_ONLY = """CREATE FUNCTION model_registry_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'model_registry_history is append-only';
END $$"""

REQUEST_KINDS = ("deploy", "promote", "rollback")
REQUEST_STATUSES = ("pending", "running", "done", "failed")


def _routes() -> str:
    # Which generation (entry and its Ray Serve deployment) answers a model's requests: one row per model and
    # environment, changed in the same transaction as the entries it switches between.
    return f"""CREATE TABLE model_registry_routes (
    model_id TEXT NOT NULL,
    environment TEXT NOT NULL CHECK (environment IN {_ENVIRONMENTS}),
    entry_id INTEGER NOT NULL REFERENCES model_registry_entries (id),
    deployment TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (model_id, environment))"""


def _requests(id_column: str) -> str:
    # A change asked for by the CLI or the admin API, applied by the serve container's head process.
    return f"""CREATE TABLE model_registry_requests (
    id {id_column},
    kind TEXT NOT NULL CHECK (kind IN {_in(list(REQUEST_KINDS))}),
    environment TEXT NOT NULL CHECK (environment IN {_ENVIRONMENTS}),
    model_id TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN {_in(list(REQUEST_STATUSES))}),
    result TEXT NOT NULL DEFAULT '',
    requested_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    changed_at TEXT NOT NULL)"""


# What a generation was started with (the models.yaml entry, as JSON): a rollback starts it again from this.
_SPECS = """CREATE TABLE model_registry_specs (
    entry_id INTEGER PRIMARY KEY REFERENCES model_registry_entries (id),
    spec TEXT NOT NULL)"""
_DROP_V3 = ("DROP TABLE model_registry_specs", "DROP TABLE model_registry_requests", "DROP TABLE model_registry_routes")

# The Batch API (appliance.batch): uploaded and result files (their bytes on disk under BATCH_DATA_DIR), batches
# with their runner's lease, and one row per answered line (a resumed batch never runs a line twice). Times are
# Unix seconds here: the OpenAI objects carry them so.
_BATCH_FILES = """CREATE TABLE batch_files (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    filename TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL)"""
_BATCH_JOBS = """CREATE TABLE batch_jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('validating', 'failed', 'in_progress', 'finalizing', 'completed',
                                           'expired', 'cancelling', 'cancelled')),
    total INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    errors TEXT NOT NULL DEFAULT '',
    output_file_id TEXT,
    error_file_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    in_progress_at BIGINT,
    finalizing_at BIGINT,
    completed_at BIGINT,
    failed_at BIGINT,
    expired_at BIGINT,
    cancelling_at BIGINT,
    cancelled_at BIGINT,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION)"""
_BATCH_RESULTS = """CREATE TABLE batch_results (
    batch_id TEXT NOT NULL REFERENCES batch_jobs (id) ON DELETE CASCADE,
    line INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (batch_id, line))"""
_BATCH_INDEXES = (
    "CREATE INDEX batch_files_owner ON batch_files (owner, created_at)",
    "CREATE INDEX batch_jobs_owner ON batch_jobs (owner, created_at)",
    "CREATE INDEX batch_jobs_status ON batch_jobs (status)",
)
_BATCH_UP = (_BATCH_FILES, _BATCH_JOBS, _BATCH_RESULTS, *_BATCH_INDEXES)
_DROP_V4 = ("DROP TABLE batch_results", "DROP TABLE batch_jobs", "DROP TABLE batch_files")

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "entries and history",
        up={
            Dialect.SQLITE: (_entries(_SQLITE_ID), _history(_SQLITE_ID), *_INDEXES),
            Dialect.POSTGRESQL: (_entries(_POSTGRES_ID), _history(_POSTGRES_ID), *_INDEXES),
        },
        down={Dialect.SQLITE: _DROP_TABLES, Dialect.POSTGRESQL: _DROP_TABLES},
    ),
    Migration(
        2,
        "history is append-only",
        up={
            Dialect.SQLITE: tuple(
                f"CREATE TRIGGER model_registry_history_no_{op.lower()} BEFORE {op} ON model_registry_history "
                "BEGIN SELECT RAISE(ABORT, 'model_registry_history is append-only'); END"
                for op in ("UPDATE", "DELETE")
            ),
            Dialect.POSTGRESQL: (
                _PG_APPEND_ONLY,
                "CREATE TRIGGER model_registry_history_append_only BEFORE UPDATE OR DELETE ON model_registry_history "
                "FOR EACH ROW EXECUTE FUNCTION model_registry_history_append_only()",
            ),
        },
        down={
            Dialect.SQLITE: (
                "DROP TRIGGER model_registry_history_no_update",
                "DROP TRIGGER model_registry_history_no_delete",
            ),
            Dialect.POSTGRESQL: (
                "DROP TRIGGER model_registry_history_append_only ON model_registry_history",
                "DROP FUNCTION model_registry_history_append_only()",
            ),
        },
    ),
    Migration(
        3,
        "routes and change requests",
        up={
            Dialect.SQLITE: (_routes(), _requests(_SQLITE_ID), _SPECS),
            Dialect.POSTGRESQL: (_routes(), _requests(_POSTGRES_ID), _SPECS),
        },
        down={Dialect.SQLITE: _DROP_V3, Dialect.POSTGRESQL: _DROP_V3},
    ),
    Migration(
        4,
        "batch files and jobs",
        up={Dialect.SQLITE: _BATCH_UP, Dialect.POSTGRESQL: _BATCH_UP},
        down={Dialect.SQLITE: _DROP_V4, Dialect.POSTGRESQL: _DROP_V4},
    ),
)
HEAD = MIGRATIONS[-1].version


def current_version(tx: Transaction, *, create: bool = True) -> int:
    """The schema's version (0: empty). ``create=False`` reads only: no version table is version 0."""
    if create:
        tx.execute(VERSION_TABLE)
    elif not _has_version_table(tx):
        return 0
    row = tx.one("SELECT MAX(version) AS version FROM registry_schema")
    return int(row["version"]) if row and row["version"] is not None else 0


def plan(current: int, target: int) -> list[tuple[Migration, bool]]:
    """The migrations between ``current`` and ``target`` in the order they run, each with True for up."""
    if not 0 <= target <= HEAD:
        raise ValueError(f"a schema version from 0 to {HEAD}, not {target}")
    if target >= current:
        return [(m, True) for m in MIGRATIONS if current < m.version <= target]
    return [(m, False) for m in reversed(MIGRATIONS) if target < m.version <= current]


def apply(tx: Transaction, migration: Migration, up: bool, now: str) -> None:
    for statement in (migration.up if up else migration.down)[tx.dialect]:
        tx.execute(statement)
    if up:
        tx.execute(
            "INSERT INTO registry_schema (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, now),
        )
    else:
        tx.execute("DELETE FROM registry_schema WHERE version = ?", (migration.version,))


def _has_version_table(tx: Transaction) -> bool:
    if tx.dialect is Dialect.SQLITE:
        return tx.one("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'registry_schema'") is not None
    row = tx.one("SELECT to_regclass('registry_schema') IS NOT NULL AS present")
    return bool(row and row["present"])
