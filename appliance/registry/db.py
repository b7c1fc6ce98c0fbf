"""Where the registry lives (``REGISTRY_URL``) and a small connection layer over SQLite and PostgreSQL.

``sqlite:///data/registry/registry.db`` (relative to the working directory; four slashes for an absolute path)
is the default: one file, WAL mode, so readers never wait for the writer. ``postgresql://user@host/db`` uses a
server the site already runs, through psycopg 3 (the ``registry-postgres`` extra); its password comes from
libpq's usual places (``~/.pgpass``, ``PGPASSFILE``), never from ``.env``. SQL is written once with ``?``
placeholders; the PostgreSQL side turns them into ``%s``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from appliance.errors import ApplianceError, NotAvailableError

_LOGGER = logging.getLogger(__name__)

DEFAULT_REGISTRY_URL = "sqlite:///data/registry/registry.db"
SQLITE_BUSY_TIMEOUT_S = 10.0
Row = dict[str, Any]


class RegistryError(ApplianceError):
    """The registry cannot be reached or refused a change."""


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class RegistryLocation:
    dialect: Dialect
    path: Path | None = None  # SQLite: the file
    dsn: str = ""  # PostgreSQL: the libpq connection URL

    def describe(self) -> str:
        """Where it is, without any password (for messages and logs)."""
        if self.dialect is Dialect.SQLITE:
            return f"sqlite:{self.path}"
        parts = urlsplit(self.dsn)
        where = f"{parts.hostname}:{parts.port or 5432}" if parts.hostname else "unix-socket"
        return f"postgresql:{where}{parts.path}"


def parse_registry_url(url: str) -> RegistryLocation:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://…``; ValueError says what is wrong."""
    url = url.strip() or DEFAULT_REGISTRY_URL
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("a URL like sqlite:///data/registry/registry.db or postgresql://user@host:5432/db")
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ValueError("sqlite:///PATH (three slashes, then the file path; four for an absolute path)")
        return RegistryLocation(Dialect.SQLITE, path=Path(rest[1:]))
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        if parts.password:
            raise ValueError("no password in the URL: put it in ~/.pgpass (or the file PGPASSFILE names)")
        if not parts.path.strip("/"):
            raise ValueError("postgresql://USER@HOST:PORT/DATABASE (the database name is missing)")
        return RegistryLocation(Dialect.POSTGRESQL, dsn=url)
    raise ValueError(f"a sqlite:/// or postgresql:// URL, not {scheme}://")


class Transaction:
    """One transaction: ``execute`` runs a statement written with ``?`` placeholders and returns its rows."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self.dialect is Dialect.POSTGRESQL:
            # no parameters: none passed, so PostgreSQL's driver reads '%' in the SQL as itself
            self._cursor.execute(sql.replace("?", "%s"), tuple(params) if params else None)
        else:
            self._cursor.execute(sql, tuple(params))
        if self._cursor.description is None:
            return []
        names = [column[0] for column in self._cursor.description]
        return [dict(zip(names, row, strict=True)) for row in self._cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None


class Database:
    """Opens short transactions on the registry; nothing is held open between them."""

    def __init__(self, location: RegistryLocation) -> None:
        self.location = location
        self.dialect = location.dialect
        # a relative SQLite path is resolved once, against the working directory of the moment the store is
        # opened: a later chdir (a test's, a library's) never sends the store to another file
        self._file = location.path.absolute() if location.path is not None else None

    def exists(self) -> bool:
        """SQLite: the file is there (PostgreSQL: assumed; a connection error says otherwise)."""
        return self.dialect is Dialect.POSTGRESQL or bool(self._file and self._file.exists())

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Transaction]:
        if self.dialect is Dialect.SQLITE:
            with self._sqlite(write) as tx:
                yield tx
        else:
            with self._postgres() as tx:
                yield tx

    @contextmanager
    def _sqlite(self, write: bool) -> Iterator[Transaction]:
        assert self._file is not None
        path = self._file
        try:
            if write:
                path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise RegistryError(f"cannot open the registry {path}: {err}") from err
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if write and conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield Transaction(cursor, Dialect.SQLITE)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        except sqlite3.Error as err:
            raise RegistryError(f"registry {path}: {err}") from err
        finally:
            conn.close()

    @contextmanager
    def _postgres(self) -> Iterator[Transaction]:
        try:
            import psycopg
        except ImportError:
            raise NotAvailableError(
                "REGISTRY_URL names PostgreSQL but its driver is not installed: pip install '.[registry-postgres]'"
            ) from None
        try:
            conn = psycopg.connect(self.location.dsn, connect_timeout=10)
        except psycopg.Error as err:
            raise RegistryError(f"cannot connect to the registry {self.location.describe()}: {err}") from err
        try:
            with conn.transaction(), conn.cursor() as cursor:
                yield Transaction(cursor, Dialect.POSTGRESQL)
        except psycopg.Error as err:
            raise RegistryError(f"registry {self.location.describe()}: {err}") from err
        finally:
            conn.close()
