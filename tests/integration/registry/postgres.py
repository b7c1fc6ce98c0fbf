"""A real PostgreSQL server for the tests, from Debian's ``postgresql`` package: ``initdb`` into a temporary
directory, ``pg_ctl start`` listening only on a Unix socket there (no TCP port at all), stopped at the end.

PostgreSQL refuses to run as root: when the tests run as root, the server runs as ``nobody`` (``setpriv``, from
util-linux) in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import need

PACKAGE = "postgresql"
SUPERUSER = "appliance_test"


def find_bin() -> Path | None:
    """The newest installed server's bin directory (/usr/lib/postgresql/<major>/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


@dataclass(frozen=True)
class Server:
    socket_dir: Path

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


@contextmanager
def running_server() -> Iterator[Server]:
    bin_dir = find_bin()
    need(
        bin_dir is not None,
        f"PostgreSQL's server is missing (Debian package {PACKAGE}: initdb and pg_ctl under "
        "/usr/lib/postgresql/*/bin); `make test` installs it (TEST_TOOLS in the Makefile)",
    )
    assert bin_dir is not None
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="appliance-pg-"))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        need(shutil.which("setpriv") is not None, "setpriv is missing (Debian package util-linux)")
        as_user = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
    root.chmod(0o755)
    data, log = root / "data", root / "server.log"

    def run(*argv: str) -> None:
        result = subprocess.run(
            [*as_user, *argv],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
        )
        assert result.returncode == 0, f"{argv[0]} failed: {result.stdout}{result.stderr}"

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-sync")
        options = f"-c listen_addresses='' -k {root} -c fsync=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            yield Server(root)
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
