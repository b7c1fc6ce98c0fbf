"""A model's manifest: every file it loads from (weights, configs, tokenizer) with its size and SHA-256, and
the Hugging Face revision when known. Written on first sight, compared before every load.

``digest`` covers the files only (names, sizes, hashes), so the same weights have the same digest wherever
they lie: the registry records it, and promotion compares it. ``compare`` is pure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from appliance.lifecycle.sources import model_files

FORMAT = 1
_CHUNK = 4 * 1024 * 1024
_SNAPSHOT_RE = re.compile(r"/snapshots/([0-9a-f]{40})(?:/|$)")


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str


def sha256_file(path: Path) -> FileDigest:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(size, digest.hexdigest())


def files_digest(files: Mapping[str, FileDigest]) -> str:
    canonical = json.dumps({name: [d.size, d.sha256] for name, d in sorted(files.items())}, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    source: str
    revision: str | None
    files: Mapping[str, FileDigest]  # relative POSIX path → size and hash
    created_at: str

    @property
    def digest(self) -> str:
        return files_digest(self.files)

    @property
    def paths(self) -> tuple[PurePosixPath, ...]:
        return tuple(PurePosixPath(name) for name in sorted(self.files))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "source": self.source,
            "revision": self.revision,
            "created_at": self.created_at,
            "digest": self.digest,
            "files": {name: {"size": d.size, "sha256": d.sha256} for name, d in sorted(self.files.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        if data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
            raise ValueError(f"a manifest of format {FORMAT} with a 'files' mapping")
        files = {
            str(name): FileDigest(int(entry["size"]), str(entry["sha256"])) for name, entry in data["files"].items()
        }
        manifest = cls(str(data["source"]), data.get("revision"), files, str(data.get("created_at", "")))
        if data.get("digest") not in (None, manifest.digest):
            raise ValueError("a digest that matches its files (the manifest was edited)")
        return manifest


def hash_directory(directory: Path) -> dict[str, FileDigest]:
    """Size and SHA-256 of every file a manifest covers (reads every byte: seconds per GB)."""
    return {str(relative): sha256_file(directory / relative) for relative in model_files(directory)}


def revision_of(directory: Path, pinned: str | None) -> str | None:
    """The Hugging Face revision: the pinned one, or the commit of a hub-cache snapshot directory."""
    if pinned:
        return pinned
    match = _SNAPSHOT_RE.search(directory.as_posix())
    return match.group(1) if match else None


def build_manifest(directory: Path, *, source: str, revision: str | None, created_at: str) -> Manifest:
    return Manifest(source, revision_of(directory, revision), hash_directory(directory), created_at)


@dataclass(frozen=True)
class Mismatch:
    """One file that is not what the manifest says: changed (both hashes), missing, or not covered."""

    path: str
    expected: str  # "sha256:<hex>" or "" when the manifest does not list it
    found: str  # "sha256:<hex>" or "" when the file is gone

    def describe(self) -> str:
        if not self.found:
            return f"{self.path}: expected {self.expected}, found no file"
        if not self.expected:
            return f"{self.path}: not in the manifest (found {self.found})"
        return f"{self.path}: expected {self.expected}, found {self.found}"


def compare(manifest: Manifest, found: Mapping[str, FileDigest]) -> list[Mismatch]:
    """Pure: every difference between the manifest and the files found, by path."""
    mismatches = []
    for name in sorted(set(manifest.files) | set(found)):
        want, have = manifest.files.get(name), found.get(name)
        if want == have:
            continue
        mismatches.append(
            Mismatch(name, f"sha256:{want.sha256}" if want else "", f"sha256:{have.sha256}" if have else "")
        )
    return mismatches


class ManifestStore:
    """Manifests as JSON files in one directory (REGISTRY_MANIFEST_DIR), one per model source."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, source: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(source).name or "model")[:64]
        return self.directory / f"{stem}-{hashlib.sha256(source.encode()).hexdigest()[:12]}.json"

    def load(self, source: str) -> Manifest | None:
        """The manifest of ``source``; None when there is none. ValueError for one that cannot be trusted."""
        path = self.path_for(source)
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: cannot be read as JSON ({err})") from None
        try:
            manifest = Manifest.from_json(data)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: expected {err}") from None
        if manifest.source != source:
            raise ValueError(f"{path}: written for {manifest.source!r}, not {source!r}")
        return manifest

    def save(self, manifest: Manifest) -> Path:
        """Write atomically (a temporary file renamed into place); OSError when the directory is not writable."""
        path = self.path_for(manifest.source)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(manifest.to_json(), handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
