"""``restore ARCHIVE``: verify every checksum, then put files and volumes back on a stack that is down.

Nothing is changed until the whole archive has been read and matched against its manifest. Files are staged
in ``.restore-<stamp>/new`` beside the paths they replace; the volumes are refilled first (the step most
likely to fail), then each host path is swapped in with a rename; what it replaced is kept under
``.restore-<stamp>/previous`` for the operator to delete.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from appliance.backup.archive import Sink, scan
from appliance.backup.manifest import FILES_PREFIX, VOLUMES_PREFIX, BackupError, Manifest, verify

_LOGGER = logging.getLogger(__name__)
MAX_LISTED = 12


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    restored: tuple[str, ...]  # parts
    previous: Path | None  # where the replaced files were put


def check_archive(path: Path) -> Manifest:
    """Read the whole archive; its manifest when every member matches, else BackupError listing what not."""
    manifest, seen = scan(path)
    problems = verify(manifest, seen)
    if problems:
        shown = "; ".join(problems[:MAX_LISTED]) + (
            f"; … {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        )
        raise BackupError(
            f"{path} does not match its manifest ({len(problems)} problem(s): {shown}); nothing was changed"
        )
    return manifest


class _FileSink:
    def __init__(self, path: Path, mode: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.mode = path, mode
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        os.chmod(self.path, self.mode)


class _TarMemberSink:
    """Streams one member's bytes into a tar being written (header first, padding at the end)."""

    def __init__(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        self.tar, self.written = tar, 0
        header = info.tobuf(tar.format, tar.encoding, tar.errors)  # the header only; the bytes follow in write()
        tar.fileobj.write(header)
        tar.offset += len(header)

    def write(self, data: bytes) -> None:
        self.tar.fileobj.write(data)
        self.written += len(data)

    def close(self) -> None:
        blocks = math.ceil(self.written / tarfile.BLOCKSIZE)
        self.tar.fileobj.write(tarfile.NUL * (blocks * tarfile.BLOCKSIZE - self.written))
        self.tar.offset += blocks * tarfile.BLOCKSIZE


class _Stager:
    """The scan handler of the second pass: host files into ``new/``, volume members into one tar per volume."""

    def __init__(self, staging: Path, manifest: Manifest, top: str) -> None:
        self.new = staging / "new"
        self.top = top
        self.dirs: list[tuple[Path, int]] = []
        self.tars: dict[str, tarfile.TarFile] = {}
        self.tar_paths: dict[str, Path] = {}
        for volume in manifest.volumes.values():
            self.tar_paths[volume] = staging / f"{volume}.tar"
            self.tars[volume] = tarfile.open(self.tar_paths[volume], "w", format=tarfile.PAX_FORMAT)

    def __call__(self, info: tarfile.TarInfo, kind: str) -> Sink | None:
        name = info.name
        if name.startswith(FILES_PREFIX):
            target = self.new / name[len(FILES_PREFIX) :]
            if kind == "dir":
                target.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.dirs.append((target, info.mode & 0o7777))
                return None
            if kind == "symlink":
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(info.linkname, target)
                return None
            return _FileSink(target, info.mode & 0o7777)
        volume, _, rest = name[len(VOLUMES_PREFIX) :].partition("/")
        tar = self.tars[volume]
        clone = tarfile.TarInfo(f"{self.top}/{rest}" if rest else self.top)
        clone.type, clone.mode, clone.uid, clone.gid, clone.mtime = info.type, info.mode, info.uid, info.gid, info.mtime
        clone.linkname, clone.size = info.linkname, info.size if kind == "file" else 0
        if kind == "file":
            return _TarMemberSink(tar, clone)
        tar.addfile(clone)
        return None

    def close(self) -> None:
        for tar in self.tars.values():
            tar.close()
        for path, mode in reversed(self.dirs):
            os.chmod(path, mode)


def restore_archive(
    path: Path,
    root: Path,
    *,
    refill_volume: Callable[[str, Path], None] | None,
    top: str = "volume",
    now: datetime | None = None,
    manifest: Manifest | None = None,
) -> RestoreResult:
    """Verify ``path`` (unless ``manifest`` says it was, by :func:`check_archive`), stage it (checked again as
    it is read), refill its volumes with ``refill_volume(volume, tar)`` and swap the host paths in under
    ``root``. The caller has made sure the stack is down."""
    manifest = manifest or check_archive(path)
    if manifest.volumes and refill_volume is None:
        raise BackupError("the archive holds volumes but Docker is not reachable to restore them")
    stamp = (now or datetime.now(tz=UTC)).strftime("%Y%m%dT%H%M%SZ")
    staging = root / f".restore-{stamp}"
    staging.mkdir(mode=0o700)
    try:
        stager = _Stager(staging, manifest, top)
        try:
            _, seen = scan(path, stager)
        finally:
            stager.close()
        problems = verify(manifest, seen)
        if problems:  # the file changed between the two reads
            raise BackupError(f"{path} changed while it was read ({problems[0]}); nothing was changed")
        for volume, tar_path in stager.tar_paths.items():
            assert refill_volume is not None
            refill_volume(volume, tar_path)
            tar_path.unlink()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = staging / "previous"
    for part, paths in manifest.parts.items():
        if part in manifest.volumes:
            continue
        for rel in paths:
            source, target = stager.new / rel, root / rel
            if not source.exists() and not source.is_symlink():
                continue
            if target.exists() or target.is_symlink():
                (previous / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, previous / rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    shutil.rmtree(stager.new, ignore_errors=True)
    kept = previous if previous.exists() else None
    if kept is None:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreResult(manifest, tuple(manifest.parts), kept)
