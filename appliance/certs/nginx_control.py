"""The nginx test/reload commands ``renew`` is given, for an nginx on this host (CLI, tests).

In the compose stack nginx runs in its own container: the supervisor passes callables that go through the
Docker SDK (appliance/docker) instead. Both raise on failure; ``renew`` rolls back when they do.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from appliance.certs.errors import CertError


def _nginx() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CertError(f"{what}: could not run {argv[0]}: {err}") from err
    if done.returncode != 0:
        raise CertError(f"{what} failed: {done.stderr.strip() or done.stdout.strip()}")


def local_nginx(conf: Path, nginx: str | None = None) -> tuple[Callable[[], None], Callable[[], None]]:
    """(test, reload) for the nginx whose config is ``conf`` (reload signals the master via its pid file)."""
    binary = nginx or _nginx()
    test = lambda: _run([binary, "-t", "-q", "-c", str(conf)], "nginx -t")  # noqa: E731
    reload = lambda: _run([binary, "-s", "reload", "-c", str(conf)], "nginx -s reload")  # noqa: E731
    return test, reload
