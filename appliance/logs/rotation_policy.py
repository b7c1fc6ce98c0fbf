"""When to rotate a log file, decided purely: ``should_rotate(stat, policy, now)``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RotationPolicy:
    max_bytes: int = 100 * 1024 * 1024
    max_age_s: float = 24 * 3600.0  # rotate a non-empty file at least this often
    keep: int = 10  # rotated .gz files kept
    retention_s: float = 14 * 24 * 3600.0  # rotated files older than this are deleted


@dataclass(frozen=True)
class LogStat:
    size: int
    created: float  # epoch seconds the live file was started (first line, or its last rotation)


def should_rotate(stat: LogStat | None, policy: RotationPolicy, now: float) -> str | None:
    """Why to rotate (``size`` / ``age``), or None. Empty or missing files are never rotated."""
    if stat is None or stat.size == 0:
        return None
    if stat.size >= policy.max_bytes:
        return "size"
    if now - stat.created >= policy.max_age_s:
        return "age"
    return None


def to_delete(rotated: list[tuple[str, float]], policy: RotationPolicy, now: float) -> list[str]:
    """Of ``(name, mtime)`` rotated files, those past the keep count (oldest first) or the retention age."""
    newest_first = sorted(rotated, key=lambda item: item[1], reverse=True)
    doomed = [name for name, _ in newest_first[policy.keep :]]
    doomed += [name for name, mtime in newest_first[: policy.keep] if now - mtime > policy.retention_s]
    return doomed
