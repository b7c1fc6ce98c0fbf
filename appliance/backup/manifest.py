"""The archive's manifest and the pure decisions about archives: names, verification, retention, the schedule.

An archive is ``appliance-backup-<UTC stamp>.tar.gz``: every member under ``files/`` (paths relative to the
appliance's directory) or ``volumes/<compose volume>/``, then ``MANIFEST.json`` as the last member. The manifest
names the format, the parts and, for each member, its kind, mode, size and SHA-256; a member it does not list,
a listed one that is missing or a checksum that differs makes the archive unusable.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from appliance.errors import ApplianceError

FORMAT = "appliance-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "MANIFEST.json"
FILES_PREFIX = "files/"
VOLUMES_PREFIX = "volumes/"
ARCHIVE_PREFIX = "appliance-backup-"
ARCHIVE_SUFFIX = ".tar.gz"
_STAMP = "%Y%m%dT%H%M%SZ"
_NAME_RE = re.compile(rf"^{re.escape(ARCHIVE_PREFIX)}(\d{{8}}T\d{{6}}Z){re.escape(ARCHIVE_SUFFIX)}$")
KINDS = ("file", "dir", "symlink")
STALE_PARTIAL = timedelta(hours=6)  # an unfinished archive this old (by its name's time) is a killed backup's


class BackupError(ApplianceError):
    """A backup could not be written, or an archive cannot be restored (it says why and what to do)."""


@dataclass(frozen=True)
class Entry:
    """One member of the archive as the manifest records it."""

    path: str
    kind: str  # file | dir | symlink
    mode: int
    size: int = 0
    sha256: str = ""
    target: str = ""  # symlinks
    uid: int = 0  # volumes keep their owners (Prometheus and Grafana run as their own users)
    gid: int = 0


@dataclass(frozen=True)
class Manifest:
    created: str  # ISO 8601, UTC
    project: str
    appliance_version: str
    # part -> what it covers: host paths relative to the appliance's directory (files/…), or one volume name
    parts: Mapping[str, tuple[str, ...]]
    volumes: Mapping[str, str] = field(default_factory=dict)  # part -> compose volume (prometheus-data, …)
    entries: tuple[Entry, ...] = ()
    notes: tuple[str, ...] = ()  # what was left out and why (no Grafana in local mode, a PostgreSQL registry, …)
    format: str = FORMAT
    version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        data = asdict(self)
        data["parts"] = {k: list(v) for k, v in self.parts.items()}
        return json.dumps(data, indent=1, sort_keys=True).encode()


def manifest_from_json(raw: bytes) -> Manifest:
    """The manifest of an archive; BackupError when it is not one of ours (or of a newer format)."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BackupError("not an appliance backup: its MANIFEST.json names another format")
        if data.get("version") != FORMAT_VERSION:
            raise BackupError(
                f"backup format version {data.get('version')!r} is not one this appliance reads "
                f"(it reads {FORMAT_VERSION}): restore it with the appliance version that wrote it"
            )
        entries = tuple(Entry(**item) for item in data["entries"])
        return Manifest(
            created=str(data["created"]),
            project=str(data["project"]),
            appliance_version=str(data["appliance_version"]),
            parts={str(k): tuple(str(p) for p in v) for k, v in data["parts"].items()},
            volumes={str(k): str(v) for k, v in data.get("volumes", {}).items()},
            entries=entries,
            notes=tuple(str(n) for n in data.get("notes", ())),
        )
    except BackupError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise BackupError(f"not an appliance backup: its MANIFEST.json cannot be read ({type(err).__name__})") from err


def archive_name(now: datetime) -> str:
    return f"{ARCHIVE_PREFIX}{now.astimezone(UTC).strftime(_STAMP)}{ARCHIVE_SUFFIX}"


def archive_time(name: str) -> datetime | None:
    """When the archive called ``name`` was made; None for any other file name."""
    match = _NAME_RE.match(name)
    if not match:
        return None
    return datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)


def archives_to_delete(names: Iterable[str], keep: int) -> list[str]:
    """Retention: of the archives among ``names`` (other files are never touched), all but the ``keep`` newest."""
    dated = sorted((t, n) for n in names if (t := archive_time(n)) is not None)
    return [n for _, n in dated[: max(0, len(dated) - max(keep, 1))]]


def stale_partials(names: Iterable[str], now: datetime) -> list[str]:
    """Unfinished archives (``.NAME.partial``, left by a backup that was killed) of archives named more than
    ``STALE_PARTIAL`` before ``now``: no backup still writing them. Other files are never touched."""
    stale = []
    for name in names:
        if name.startswith(".") and name.endswith(".partial"):
            made = archive_time(name[1 : -len(".partial")])
            if made is not None and now - made > STALE_PARTIAL:
                stale.append(name)
    return sorted(stale)


def seconds_until(now: datetime, hour_utc: int) -> float:
    """Seconds from ``now`` to the next ``hour_utc``:00 UTC (a full day when it is that moment now)."""
    now = now.astimezone(UTC)
    target = now.replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    return (target - now).total_seconds()


def member_problem(name: str) -> str | None:
    """Why ``name`` may not be a member (absolute, climbing out, not under files/ or volumes/); None when fine."""
    if name == MANIFEST_NAME:
        return None
    if name.startswith("/") or "\\" in name or "\x00" in name:
        return "an absolute or odd path"
    norm = posixpath.normpath(name)
    if norm != name.rstrip("/") or norm.startswith("..") or "/../" in f"/{norm}/":
        return "a path that is not normal or climbs out"
    if not (name.startswith(FILES_PREFIX) or name.startswith(VOLUMES_PREFIX)):
        return "a path outside files/ and volumes/"
    return None


def symlink_problem(path: str, target: str) -> str | None:
    """A host file symlink may only point to a relative place inside the archive's own tree (certificates use
    these). Links inside a volume are Docker's to extract, within the container (any target is harmless)."""
    if path.startswith(VOLUMES_PREFIX):
        return None
    if target.startswith("/"):
        return f"{path} points to an absolute path"
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    top = path.split("/", 2)
    root = "/".join(top[:2])  # files/<first component> or volumes/<volume>
    if not (joined == root or joined.startswith(root + "/")):
        return f"{path} points outside {root}"
    return None


def covering_part(manifest: Manifest, name: str) -> str | None:
    """The part a member belongs to, or None when no part covers it."""
    for part, paths in manifest.parts.items():
        if part in manifest.volumes:
            if (
                name.startswith(f"{VOLUMES_PREFIX}{manifest.volumes[part]}/")
                or name == f"{VOLUMES_PREFIX}{manifest.volumes[part]}"
            ):
                return part
            continue
        for path in paths:
            prefixed = FILES_PREFIX + path
            if name == prefixed or name.startswith(prefixed + "/"):
                return part
    return None


def verify(manifest: Manifest, seen: Mapping[str, Entry]) -> list[str]:
    """Every problem with an archive whose members were read as ``seen`` (name -> what was found): missing,
    unlisted or changed members, unsafe paths and links, members no part covers. Empty when it is intact."""
    problems: list[str] = []
    listed = {e.path: e for e in manifest.entries}
    if len(listed) != len(manifest.entries):
        problems.append("the manifest lists a member twice")
    for path, want in listed.items():
        got = seen.get(path)
        if got is None:
            problems.append(f"{path}: listed in the manifest but missing (a partial archive?)")
        elif got.kind != want.kind:
            problems.append(f"{path}: a {got.kind}, the manifest says {want.kind}")
        elif want.kind == "file" and (got.size != want.size or got.sha256 != want.sha256):
            problems.append(f"{path}: checksum or size differs from the manifest (corrupted)")
        elif want.kind == "symlink" and got.target != want.target:
            problems.append(f"{path}: link target differs from the manifest")
    problems += [f"{path}: not listed in the manifest (a foreign member)" for path in seen if path not in listed]
    for path, entry in listed.items():
        if (why := member_problem(path)) is not None:
            problems.append(f"{path}: {why}")
        elif entry.kind not in KINDS:
            problems.append(f"{path}: unsupported kind {entry.kind!r}")
        elif entry.kind == "symlink" and (why := symlink_problem(path, entry.target)) is not None:
            problems.append(why)
        elif covering_part(manifest, path) is None:
            problems.append(f"{path}: no part of the manifest covers it")
    for part, paths in manifest.parts.items():
        for path in paths:
            if part not in manifest.volumes and (path.startswith("/") or ".." in path.split("/")):
                problems.append(f"part {part}: unsafe path {path!r}")
    return problems


def describe(manifest: Manifest) -> dict[str, Any]:
    """A short summary for people (what is in it, from when, for which project)."""
    sizes: dict[str, int] = {}
    for entry in manifest.entries:
        part = covering_part(manifest, entry.path) or "?"
        sizes[part] = sizes.get(part, 0) + entry.size
    return {
        "created": manifest.created,
        "project": manifest.project,
        "appliance": manifest.appliance_version,
        "parts": {p: sizes.get(p, 0) for p in manifest.parts},
        "notes": list(manifest.notes),
    }
