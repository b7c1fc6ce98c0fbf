"""Batch files and batches in the registry database (migration 4), the files' bytes on disk.

A file's bytes live in ``BATCH_DATA_DIR/files/<id>.jsonl`` (written to a temporary name, then renamed: a file
is whole or absent); its row says who owns it. A batch's runner holds a lease on it (``lease_owner``,
``lease_until``): :meth:`BatchStore.claim` takes an active batch whose lease is free or lapsed in one
statement, so two ingress replicas never run the same batch, and a replica that died leaves its batches to
the next claim once the lease lapses. Each answered line is a ``batch_results`` row, written once: a resumed
batch skips the lines already there.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.batch.lines import ACTIVE, BatchStatus, counts, may_move
from appliance.registry.db import Database, Row
from appliance.registry.store import RegistryStore

PURPOSE_BATCH = "batch"
PURPOSE_OUTPUT = "batch_output"
_FILE_COLUMNS = "id, owner, purpose, filename, bytes, created_at"
_ACTIVE = tuple(s.value for s in ACTIVE)
_TIMES = {
    BatchStatus.IN_PROGRESS: "in_progress_at",
    BatchStatus.FINALIZING: "finalizing_at",
    BatchStatus.COMPLETED: "completed_at",
    BatchStatus.FAILED: "failed_at",
    BatchStatus.EXPIRED: "expired_at",
    BatchStatus.CANCELLING: "cancelling_at",
    BatchStatus.CANCELLED: "cancelled_at",
}


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


@dataclass(frozen=True)
class FileRecord:
    id: str
    owner: str
    purpose: str
    filename: str
    bytes: int
    created_at: int

    @classmethod
    def from_row(cls, row: Row) -> FileRecord:
        return cls(row["id"], row["owner"], row["purpose"], row["filename"], int(row["bytes"]), int(row["created_at"]))

    def to_json(self) -> dict[str, Any]:
        """The OpenAI file object (never the owner: a key sees only its own files anyway)."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }


@dataclass(frozen=True)
class Batch:
    row: Row
    request_counts: dict[str, int]

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @property
    def owner(self) -> str:
        return str(self.row["owner"])

    @property
    def status(self) -> BatchStatus:
        return BatchStatus(self.row["status"])

    def to_json(self) -> dict[str, Any]:
        """The OpenAI batch object."""
        r = self.row
        return {
            "id": r["id"],
            "object": "batch",
            "endpoint": r["endpoint"],
            "input_file_id": r["input_file_id"],
            "completion_window": r["completion_window"],
            "status": r["status"],
            "errors": json.loads(r["errors"]) if r["errors"] else None,
            "output_file_id": r["output_file_id"],
            "error_file_id": r["error_file_id"],
            "created_at": r["created_at"],
            "expires_at": r["expires_at"],
            "in_progress_at": r["in_progress_at"],
            "finalizing_at": r["finalizing_at"],
            "completed_at": r["completed_at"],
            "failed_at": r["failed_at"],
            "expired_at": r["expired_at"],
            "cancelling_at": r["cancelling_at"],
            "cancelled_at": r["cancelled_at"],
            "request_counts": self.request_counts,
            "metadata": json.loads(r["metadata"] or "{}") or None,
        }


class BatchStore:
    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.files_dir = data_dir / "files"

    @classmethod
    def open(cls, registry_url: str, data_dir: Path) -> BatchStore:
        store = RegistryStore.open(registry_url)
        store.migrate()
        return cls(store.db, data_dir)

    # --- files ------------------------------------------------------------------------------------------
    def blob(self, file_id: str) -> Path:
        return self.files_dir / f"{file_id}.jsonl"

    def add_file(
        self, owner: str, purpose: str, filename: str, data: bytes, now: int, file_id: str | None = None
    ) -> FileRecord:
        """Write the bytes, then the row (a row never names missing bytes). An id given (a result file) is
        written once: a second call for it returns the first record."""
        file_id = file_id or new_id("file-")
        self.files_dir.mkdir(parents=True, exist_ok=True)
        partial = self.files_dir / f".{file_id}.{secrets.token_hex(4)}.partial"
        partial.write_bytes(data)
        os.chmod(partial, 0o600)
        with self.db.transaction() as tx:
            known = tx.one(f"SELECT {_FILE_COLUMNS} FROM batch_files WHERE id = ?", (file_id,))
            if known is not None:
                partial.unlink()
                return FileRecord.from_row(known)
            os.replace(partial, self.blob(file_id))
            tx.execute(
                "INSERT INTO batch_files (id, owner, purpose, filename, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (file_id, owner, purpose, filename, len(data), now),
            )
        return FileRecord(file_id, owner, purpose, filename, len(data), now)

    def file(self, file_id: str, owner: str) -> FileRecord | None:
        """The file if ``owner`` owns it (another key's file is as absent as an unknown one)."""
        with self.db.transaction(write=False) as tx:
            row = tx.one(f"SELECT {_FILE_COLUMNS} FROM batch_files WHERE id = ? AND owner = ?", (file_id, owner))
        return FileRecord.from_row(row) if row else None

    def files(
        self,
        owner: str,
        *,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = 100,
        ascending: bool = False,
    ) -> list[FileRecord]:
        return [
            FileRecord.from_row(r)
            for r in self._page(
                "batch_files", _FILE_COLUMNS, owner, after, limit, ascending, ("purpose", purpose) if purpose else None
            )
        ]

    def content(self, record: FileRecord) -> bytes | None:
        try:
            return self.blob(record.id).read_bytes()
        except FileNotFoundError:
            return None

    def delete_file(self, file_id: str, owner: str) -> bool:
        with self.db.transaction() as tx:
            deleted = tx.execute("DELETE FROM batch_files WHERE id = ? AND owner = ? RETURNING id", (file_id, owner))
        if deleted:
            self.blob(file_id).unlink(missing_ok=True)
        return bool(deleted)

    # --- batches ----------------------------------------------------------------------------------------
    def create(
        self,
        owner: str,
        endpoint: str,
        input_file_id: str,
        window: str,
        metadata: dict[str, str],
        *,
        total: int,
        now: int,
        expires_at: int,
        errors: dict[str, Any] | None = None,
    ) -> Batch:
        """A new batch: validating (its lines passed every check; the runner starts it), or failed with the
        errors its input file had."""
        batch_id = new_id("batch_")
        status = BatchStatus.FAILED if errors else BatchStatus.VALIDATING
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO batch_jobs (id, owner, endpoint, input_file_id, completion_window, status, total, "
                "metadata, errors, created_at, expires_at, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch_id,
                    owner,
                    endpoint,
                    input_file_id,
                    window,
                    status.value,
                    total,
                    json.dumps(metadata),
                    json.dumps(errors) if errors else "",
                    now,
                    expires_at,
                    now if errors else None,
                ),
            )
        batch = self.batch(batch_id, owner)
        assert batch is not None
        return batch

    def batch(self, batch_id: str, owner: str | None = None) -> Batch | None:
        """The batch (only if ``owner`` owns it, when given)."""
        with self.db.transaction(write=False) as tx:
            row = (
                tx.one("SELECT * FROM batch_jobs WHERE id = ?", (batch_id,))
                if owner is None
                else tx.one("SELECT * FROM batch_jobs WHERE id = ? AND owner = ?", (batch_id, owner))
            )
            return _with_counts(tx, row) if row else None

    def batches(self, owner: str, *, after: str | None = None, limit: int = 20) -> list[Batch]:
        with self.db.transaction(write=False) as tx:
            rows = self._page_in(tx, "batch_jobs", "*", owner, after, limit, False, None)
            return [_with_counts(tx, row) for row in rows]

    def move(
        self,
        batch_id: str,
        target: BatchStatus,
        now: int,
        *,
        lease_owner: str | None = None,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
    ) -> bool:
        """One allowed state change (and its time); with ``lease_owner``, only while that runner holds the lease.
        False when the batch is not in a state that may move there (or the lease is another's)."""
        with self.db.transaction() as tx:
            row = tx.one("SELECT status, lease_owner FROM batch_jobs WHERE id = ?", (batch_id,))
            if row is None or not may_move(BatchStatus(row["status"]), target):
                return False
            if lease_owner is not None and row["lease_owner"] != lease_owner:
                return False
            tx.execute(
                f"UPDATE batch_jobs SET status = ?, {_TIMES[target]} = ?, "
                "output_file_id = COALESCE(?, output_file_id), error_file_id = COALESCE(?, error_file_id) "
                "WHERE id = ?",
                (target.value, now, output_file_id, error_file_id, batch_id),
            )
        return True

    def status(self, batch_id: str) -> BatchStatus | None:
        with self.db.transaction(write=False) as tx:
            row = tx.one("SELECT status FROM batch_jobs WHERE id = ?", (batch_id,))
        return BatchStatus(row["status"]) if row else None

    # --- the runner's lease and results -------------------------------------------------------------------
    def claim(self, runner: str, *, now: float, lease_s: float) -> Batch | None:
        """The oldest active batch whose lease is free or lapsed, now leased to ``runner`` (None: nothing). An idle
        runner looks first in a read transaction: it takes the registry's write lock only when there is work."""
        marks = ", ".join("?" for _ in _ACTIVE)
        with self.db.transaction(write=False) as tx:
            if (
                tx.one(
                    f"SELECT id FROM batch_jobs WHERE status IN ({marks}) AND (lease_owner IS NULL OR "
                    "lease_until < ?) LIMIT 1",
                    (*_ACTIVE, now),
                )
                is None
            ):
                return None
        with self.db.transaction() as tx:
            rows = tx.execute(
                f"SELECT id FROM batch_jobs WHERE status IN ({marks}) AND (lease_owner IS NULL OR "
                "lease_until < ?) ORDER BY created_at, id LIMIT 1",
                (*_ACTIVE, now),
            )
            if not rows:
                return None
            claimed = tx.one(
                "UPDATE batch_jobs SET lease_owner = ?, lease_until = ? WHERE id = ? AND (lease_owner IS "
                "NULL OR lease_until < ?) RETURNING *",
                (runner, now + lease_s, rows[0]["id"], now),
            )
            return _with_counts(tx, claimed) if claimed else None

    def renew(self, batch_id: str, runner: str, *, now: float, lease_s: float) -> bool:
        """Extend the lease; False when ``runner`` no longer holds it (it lapsed and another runner took it)."""
        with self.db.transaction() as tx:
            rows = tx.execute(
                "UPDATE batch_jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? RETURNING id",
                (now + lease_s, batch_id, runner),
            )
        return bool(rows)

    def release(self, batch_id: str, runner: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE batch_jobs SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                (batch_id, runner),
            )

    def answered(self, batch_id: str) -> set[int]:
        with self.db.transaction(write=False) as tx:
            return {
                int(r["line"]) for r in tx.execute("SELECT line FROM batch_results WHERE batch_id = ?", (batch_id,))
            }

    def record(self, batch_id: str, line: int, status_code: int, result: dict[str, Any]) -> None:
        """A line's answer, kept once (a second answer to the same line, from a runner whose lease lapsed, is
        dropped)."""
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO batch_results (batch_id, line, status_code, result) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (batch_id, line) DO NOTHING",
                (batch_id, line, status_code, json.dumps(result, ensure_ascii=False)),
            )

    def results(self, batch_id: str) -> Iterable[tuple[int, str]]:
        """(status_code, JSON line) of every answered line, in line order."""
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT status_code, result FROM batch_results WHERE batch_id = ? ORDER BY line", (batch_id,)
            )
        return [(int(r["status_code"]), r["result"]) for r in rows]

    # --- paging -----------------------------------------------------------------------------------------
    def _page(
        self,
        table: str,
        columns: str,
        owner: str,
        after: str | None,
        limit: int,
        ascending: bool,
        where: tuple[str, str] | None,
    ) -> list[Row]:
        with self.db.transaction(write=False) as tx:
            return self._page_in(tx, table, columns, owner, after, limit, ascending, where)

    @staticmethod
    def _page_in(
        tx: Any,
        table: str,
        columns: str,
        owner: str,
        after: str | None,
        limit: int,
        ascending: bool,
        where: tuple[str, str] | None,
    ) -> list[Row]:
        """A key's rows newest first (or oldest first), after the row ``after`` (the id of the last one seen)."""
        sql = f"SELECT {columns} FROM {table} WHERE owner = ?"
        params: list[Any] = [owner]
        if where is not None:
            sql += f" AND {where[0]} = ?"
            params.append(where[1])
        if after:
            cursor = tx.one(f"SELECT created_at FROM {table} WHERE id = ? AND owner = ?", (after, owner))
            if cursor is None:
                return []
            op = ">" if ascending else "<"
            sql += f" AND (created_at {op} ? OR (created_at = ? AND id {op} ?))"
            params += [cursor["created_at"], cursor["created_at"], after]
        order = "ASC" if ascending else "DESC"
        sql += f" ORDER BY created_at {order}, id {order} LIMIT ?"
        params.append(limit)
        return list(tx.execute(sql, params))


def _with_counts(tx: Any, row: Row) -> Batch:
    tally = tx.execute(
        "SELECT status_code, COUNT(*) AS n FROM batch_results WHERE batch_id = ? GROUP BY status_code", (row["id"],)
    )
    return Batch(row, counts(int(row["total"]), {int(r["status_code"]): int(r["n"]) for r in tally}))
