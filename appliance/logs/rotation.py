"""Rotating log files: rename, let the writer reopen (nginx: SIGUSR1), then gzip and prune.

Rename-then-reopen loses nothing: lines written before the writer reopens land in the renamed file,
lines after it in the new one; each line is in exactly one file. The rotated file is compressed only
once it stopped growing (the writer moved on to the new file).
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.logs.rotation_policy import LogStat, RotationPolicy, should_rotate, to_delete

_LOGGER = logging.getLogger(__name__)
ReopenHook = Callable[[], None]
_BIRTH_SUFFIX = ".born"  # sidecar whose mtime records when the live file was started


@dataclass(frozen=True)
class Rotated:
    log: Path
    archive: Path
    size: int
    reason: str


def _stat(path: Path) -> LogStat | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    birth = path.with_name(path.name + _BIRTH_SUFFIX)
    if not birth.exists():
        birth.touch()
    return LogStat(size=st.st_size, created=birth.stat().st_mtime)


def rotate_file(
    path: Path,
    policy: RotationPolicy,
    *,
    reopen: ReopenHook | None = None,
    now: float | None = None,
    force: bool = False,
    quiet_s: float = 0.2,
) -> Rotated | None:
    """Rotate ``path`` when the policy says so (or ``force``); returns what was done."""
    now = time.time() if now is None else now
    reason = "forced" if force else should_rotate(_stat(path), policy, now)
    if reason is None or not path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    moved = path.with_name(f"{path.name}.{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    os.rename(path, moved)
    path.with_name(path.name + _BIRTH_SUFFIX).touch()
    if reopen is not None:
        reopen()  # e.g. SIGUSR1 to nginx; it reopens a moment later
    # Without a hook the live file is not recreated here: writers that reopen when their path is gone
    # (the audit log, logging.handlers.WatchedFileHandler) make it on their next line.
    wait_until_idle(moved, quiet_s=quiet_s)
    archive = moved.with_name(moved.name + ".gz")
    with moved.open("rb") as source, gzip.open(archive, "wb") as target:
        shutil.copyfileobj(source, target)
    size = moved.stat().st_size
    moved.unlink()
    _prune(path, policy, now)
    _LOGGER.info("rotated %s (%s, %d bytes) to %s", path, reason, size, archive.name)
    return Rotated(log=path, archive=archive, size=size, reason=reason)


def _prune(path: Path, policy: RotationPolicy, now: float) -> None:
    rotated = [(p.name, p.stat().st_mtime) for p in path.parent.glob(f"{path.name}.*.gz")]
    for name in to_delete(rotated, policy, now):
        (path.parent / name).unlink(missing_ok=True)
        _LOGGER.info("deleted old log %s", name)


def wait_until_idle(path: Path, quiet_s: float = 0.2, timeout_s: float = 5.0) -> None:
    """Wait until ``path`` stopped growing (the writer reopened elsewhere) — for writers without an ack."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else 0
        if size == last:
            return
        last = size
        time.sleep(quiet_s)
