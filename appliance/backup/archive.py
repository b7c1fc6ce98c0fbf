"""Writing and reading archives: members are hashed as they stream through, the manifest goes in last.

``ArchiveWriter`` writes to a hidden ``.NAME.partial`` file (mode 0600) and renames it only when everything,
manifest included, is on disk: an interrupted backup never looks like a finished one. ``scan`` reads an
archive once, member by member, hashing every file (and handing its bytes to a sink when restoring).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol, cast

from appliance.backup.manifest import (
    FILES_PREFIX,
    MANIFEST_NAME,
    VOLUMES_PREFIX,
    BackupError,
    Entry,
    Manifest,
    archive_name,
    manifest_from_json,
)

CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 64 << 20


class _Hashing(io.RawIOBase):
    """Passes reads through and hashes what went by (tarfile.addfile reads exactly ``size`` bytes from it)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.sha, self.count = raw, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        self.count += len(data)
        return data


class ChunkReader(io.RawIOBase):
    """A file over an iterator of byte chunks (Docker's archive stream), for ``tarfile.open(mode="r|")``."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks, self._buffer = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class ArchiveWriter:
    """``with ArchiveWriter(dir, now) as w: w.add_tree(...); w.finish(manifest)`` → the finished archive's path."""

    def __init__(self, dest_dir: Path, now: datetime) -> None:
        dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = dest_dir / archive_name(now)
        if self.path.exists():
            raise BackupError(f"{self.path} exists already (two backups in the same second?)")
        self.partial = dest_dir / f".{self.path.name}.partial"
        fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        self._raw = os.fdopen(fd, "wb")
        self._tar = tarfile.open(fileobj=self._raw, mode="w:gz", compresslevel=6)
        self.entries: list[Entry] = []
        self._names: set[str] = set()
        self._done = False

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.abort()

    def _claim(self, name: str) -> None:
        if name in self._names:
            raise BackupError(f"internal: {name} added twice")
        self._names.add(name)

    # --- members --------------------------------------------------------------------------------
    def add_dir(self, name: str, *, mode: int, uid: int = 0, gid: int = 0, mtime: float = 0.0) -> None:
        self._claim(name)
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, mode & 0o7777, uid, gid, mtime
        self._tar.addfile(info)
        self.entries.append(Entry(name, "dir", mode & 0o7777, uid=uid, gid=gid))

    def add_symlink(self, name: str, target: str, *, uid: int = 0, gid: int = 0, mtime: float = 0.0) -> None:
        self._claim(name)
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode, info.uid, info.gid, info.mtime = (
            tarfile.SYMTYPE,
            target,
            0o777,
            uid,
            gid,
            mtime,
        )
        self._tar.addfile(info)
        self.entries.append(Entry(name, "symlink", 0o777, target=target, uid=uid, gid=gid))

    def add_file(
        self, name: str, source: IO[bytes], size: int, *, mode: int, uid: int = 0, gid: int = 0, mtime: float = 0.0
    ) -> None:
        self._claim(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid, info.mtime = size, mode & 0o7777, uid, gid, mtime
        hashing = _Hashing(source)
        self._tar.addfile(info, hashing)  # raises when the source is shorter than size
        self.entries.append(
            Entry(name, "file", mode & 0o7777, size=size, sha256=hashing.sha.hexdigest(), uid=uid, gid=gid)
        )

    def add_host_file(self, name: str, path: Path) -> None:
        """A regular file from the host, read once (its size is taken from the open file)."""
        with path.open("rb") as handle:
            st = os.fstat(handle.fileno())
            self.add_file(name, handle, st.st_size, mode=st.st_mode, mtime=st.st_mtime)

    def add_tree(self, root: Path, rel: str, *, skip: Callable[[str], bool] = lambda _: False) -> int:
        """``root/rel`` (a file or a directory, walked without following links) under ``files/rel``."""
        count = 0
        start = root / rel
        items = [(start, rel)]
        while items:
            path, relpath = items.pop()
            if skip(relpath):
                continue
            st = path.lstat()
            name = FILES_PREFIX + relpath
            if stat.S_ISLNK(st.st_mode):
                self.add_symlink(name, os.readlink(path), mtime=st.st_mtime)
            elif stat.S_ISDIR(st.st_mode):
                self.add_dir(name, mode=st.st_mode, mtime=st.st_mtime)
                items += [(child, f"{relpath}/{child.name}") for child in sorted(path.iterdir(), reverse=True)]
            elif stat.S_ISREG(st.st_mode):
                self.add_host_file(name, path)
            else:
                continue  # sockets, fifos: nothing to keep
            count += 1
        return count

    def add_tar_stream(self, volume: str, source: IO[bytes] | io.RawIOBase) -> int:
        """The members of a tar stream (Docker's archive of a directory) under ``volumes/<volume>/``; the
        stream's top directory becomes the volume's root."""
        count = 0
        try:
            with tarfile.open(fileobj=cast(IO[bytes], source), mode="r|") as tar:
                for info in tar:
                    _, _, rest = info.name.strip("/").partition("/")
                    name = f"{VOLUMES_PREFIX}{volume}" + (f"/{rest}" if rest else "")
                    uid, gid, mtime = info.uid, info.gid, float(info.mtime)
                    if info.isdir():
                        self.add_dir(name, mode=info.mode, uid=uid, gid=gid, mtime=mtime)
                    elif info.issym():
                        self.add_symlink(name, info.linkname, uid=uid, gid=gid, mtime=mtime)
                    elif info.isreg():
                        member = tar.extractfile(info)
                        assert member is not None
                        self.add_file(name, member, info.size, mode=info.mode, uid=uid, gid=gid, mtime=mtime)
                    else:
                        raise BackupError(
                            f"{volume}: {info.name} is a {info.type!r} member (a hard link or device); "
                            "only files, directories and symlinks are backed up"
                        )
                    count += 1
        except (tarfile.TarError, EOFError) as err:
            raise BackupError(f"{volume}: Docker's archive stream broke off ({err})") from err
        return count

    # --- end --------------------------------------------------------------------------------------
    def finish(self, manifest: Manifest) -> Path:
        data = manifest.to_json()
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size, info.mode = len(data), 0o600
        self._tar.addfile(info, io.BytesIO(data))
        self._tar.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self.partial, self.path)
        self._done = True
        return self.path

    def abort(self) -> None:
        self._done = True
        for closing in (self._tar.close, self._raw.close):
            try:
                closing()
            except (OSError, ValueError, tarfile.TarError):
                pass
        self.partial.unlink(missing_ok=True)


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...

    def close(self) -> None: ...


# (member, kind) -> where a file's bytes go (None: nowhere); dirs and links are the handler's to make
Handler = Callable[[tarfile.TarInfo, str], Sink | None]


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    raise BackupError(f"{info.name}: a member of type {info.type!r} (hard link or device): not an appliance backup")


def scan(path: Path, handler: Handler | None = None) -> tuple[Manifest, dict[str, Entry]]:
    """Read the whole archive: its manifest and what each member really is (files hashed)."""
    seen: dict[str, Entry] = {}
    manifest_raw: bytes | None = None
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for info in tar:
                name = info.name
                if name == MANIFEST_NAME and info.isreg():
                    if info.size > MAX_MANIFEST_BYTES:
                        raise BackupError(f"{path}: its manifest is implausibly large: not an appliance backup")
                    member = tar.extractfile(info)
                    manifest_raw = member.read() if member else b""
                    continue
                if name in seen:
                    raise BackupError(f"{path}: {name} appears twice: not an appliance backup")
                kind = _kind(info)
                sink = handler(info, kind) if handler else None
                digest, size = "", 0
                if kind == "file":
                    sha = hashlib.sha256()
                    member = tar.extractfile(info)
                    while member is not None and (chunk := member.read(CHUNK)):
                        sha.update(chunk)
                        size += len(chunk)
                        if sink is not None:
                            sink.write(chunk)
                    digest = sha.hexdigest()
                if sink is not None:
                    sink.close()
                seen[name] = Entry(
                    name,
                    kind,
                    info.mode & 0o7777,
                    size=size,
                    sha256=digest,
                    target=info.linkname if kind == "symlink" else "",
                    uid=info.uid,
                    gid=info.gid,
                )
    except FileNotFoundError as err:
        raise BackupError(f"{path}: no such archive") from err
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise BackupError(
            f"{path}: truncated, corrupted or not a gzip'd tar archive ({err}); nothing was changed"
        ) from err
    if manifest_raw is None:
        raise BackupError(
            f"{path}: no MANIFEST.json at its end: a partial archive, or not an appliance backup; nothing was changed"
        )
    return manifest_from_json(manifest_raw), seen
