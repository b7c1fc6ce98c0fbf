"""Archives as files: written with their manifest last, read back member by member, refused when damaged.
Also: the stack's volumes the backup takes are the ones docker-compose.yml mounts."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from appliance.backup.archive import ArchiveWriter, ChunkReader
from appliance.backup.create import create_backup, prune
from appliance.backup.manifest import BackupError, Manifest, archive_name
from appliance.backup.restore import check_archive, restore_archive
from appliance.backup.sources import STACK_VOLUMES, HostPlan
from tests.helpers import ROOT

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def _tree(root: Path) -> None:
    (root / ".env").write_text("COMPOSE_PROJECT_NAME=appliance\n")
    (root / ".secrets").write_text("API_KEY_ADMIN=hash\n")
    (root / ".secrets").chmod(0o600)
    versions = root / "data/certs/live/.versions/localhost/1"
    versions.mkdir(parents=True)
    (versions / "fullchain.pem").write_text("CERT")
    (versions / "privkey.pem").write_text("KEY")
    (versions / "privkey.pem").chmod(0o600)
    os.symlink(".versions/localhost/1", root / "data/certs/live/localhost")


PLAN = HostPlan({"config": (".env", ".secrets"), "certs": ("data/certs",)})


def _backup(root: Path, dest: Path) -> Path:
    return create_backup(root, dest, PLAN, project="appliance", now=NOW).path


def test_an_archive_is_private_and_restores_files_modes_and_links(tmp_path: Path) -> None:
    src, dest, target = tmp_path / "src", tmp_path / "backups", tmp_path / "target"
    src.mkdir(), target.mkdir()
    _tree(src)
    path = _backup(src, dest)
    assert path.name == archive_name(NOW) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in dest.iterdir()] == [path.name]  # no partial or staging file left
    (target / ".env").write_text("OLD\n")
    result = restore_archive(path, target, refill_volume=None, now=NOW)
    assert (target / ".env").read_text() == "COMPOSE_PROJECT_NAME=appliance\n"
    assert stat.S_IMODE((target / ".secrets").stat().st_mode) == 0o600
    live = target / "data/certs/live/localhost"
    assert os.readlink(live) == ".versions/localhost/1" and (live / "fullchain.pem").read_text() == "CERT"
    assert stat.S_IMODE((live / "privkey.pem").stat().st_mode) == 0o600
    assert result.previous is not None and (result.previous / ".env").read_text() == "OLD\n"


def _rewrite(path: Path, edit) -> Path:
    """A copy of the archive with its members passed through ``edit(info, data) -> (info, data) | None``."""
    out = path.with_name("edited.tar.gz")
    with tarfile.open(path, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read() if info.isreg() else None
            kept = edit(info, data)
            if kept is not None:
                dst.addfile(kept[0], io.BytesIO(kept[1]) if kept[1] is not None else None)
    return out


def test_a_corrupted_member_is_refused_and_nothing_is_changed(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    _tree(tmp_path / "src")
    path = _backup(tmp_path / "src", tmp_path / "b")

    def flip(info: tarfile.TarInfo, data: bytes | None):
        return (info, b"XOMPOSE" + data[7:]) if info.name == "files/.env" else (info, data)

    bad = _rewrite(path, flip)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(BackupError, match=r"files/.env: checksum or size differs from the manifest \(corrupted\)"):
        restore_archive(bad, target, refill_volume=None)
    assert list(target.iterdir()) == []


def test_a_truncated_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    _tree(tmp_path / "src")
    path = _backup(tmp_path / "src", tmp_path / "b")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BackupError, match="a partial archive|truncated, corrupted"):
        check_archive(cut)
    no_manifest = _rewrite(path, lambda info, data: None if info.name == "MANIFEST.json" else (info, data))
    with pytest.raises(BackupError, match="no MANIFEST.json at its end: a partial archive"):
        check_archive(no_manifest)


def test_a_foreign_archive_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as tar:
        info = tarfile.TarInfo("etc/passwd")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"root"))
    with pytest.raises(BackupError, match="no MANIFEST.json"):
        check_archive(foreign)
    plain = tmp_path / "notes.tar.gz"
    plain.write_bytes(gzip.compress(b"just text"))
    with pytest.raises(BackupError, match="truncated, corrupted or not a gzip'd tar archive"):
        check_archive(plain)
    with pytest.raises(BackupError, match="no such archive"):
        check_archive(tmp_path / "missing.tar.gz")


def test_a_failed_backup_leaves_no_archive(tmp_path: Path) -> None:
    dest = tmp_path / "b"
    with pytest.raises(BackupError), ArchiveWriter(dest, NOW) as writer:
        writer.add_file("files/x", io.BytesIO(b"abc"), 3, mode=0o644)
        raise BackupError("the snapshot failed")
    assert list(dest.iterdir()) == []


def test_a_volume_stream_keeps_owners_and_becomes_the_volume_root(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        top = tarfile.TarInfo("20261205T030000Z-abc")
        top.type, top.mode, top.uid = tarfile.DIRTYPE, 0o755, 65534
        tar.addfile(top)
        block = tarfile.TarInfo("20261205T030000Z-abc/01ABC/index")
        block.size, block.uid, block.gid = 5, 65534, 65534
        tar.addfile(block, io.BytesIO(b"index"))
    raw = buffer.getvalue()
    with ArchiveWriter(tmp_path, NOW) as writer:
        writer.add_tar_stream("prometheus-data", ChunkReader(raw[i : i + 100] for i in range(0, len(raw), 100)))
        entries = list(writer.entries)
        path = writer.finish(
            Manifest(
                created=NOW.isoformat(),
                project="p",
                appliance_version="1",
                parts={"prometheus": ("prometheus-data",)},
                volumes={"prometheus": "prometheus-data"},
                entries=tuple(entries),
            )
        )
    assert [(e.path, e.uid) for e in entries] == [
        ("volumes/prometheus-data", 65534),
        ("volumes/prometheus-data/01ABC/index", 65534),
    ]
    refilled: dict[str, list[tuple[str, int, bytes | None]]] = {}

    def refill(volume: str, tar_path: Path) -> None:
        with tarfile.open(tar_path) as tar:
            refilled[volume] = [(m.name, m.uid, tar.extractfile(m).read() if m.isreg() else None) for m in tar]

    (tmp_path / "root").mkdir()
    restore_archive(path, tmp_path / "root", refill_volume=refill, top="volume")
    assert refilled == {"prometheus-data": [("volume", 65534, None), ("volume/01ABC/index", 65534, b"index")]}


def test_retention_deletes_only_old_archives(tmp_path: Path) -> None:
    for day in (1, 2, 3):
        (tmp_path / archive_name(datetime(2026, 12, day, tzinfo=UTC))).write_bytes(b"x")
    (tmp_path / "keep-me.txt").write_text("mine")
    assert [p.name for p in prune(tmp_path, keep=1)] == [
        archive_name(datetime(2026, 12, d, tzinfo=UTC)) for d in (1, 2)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        archive_name(datetime(2026, 12, 3, tzinfo=UTC)),
        "keep-me.txt",
    ]


def test_prune_deletes_unfinished_archives_a_killed_backup_left() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        dest = Path(folder)
        old, running = (f".{archive_name(NOW - timedelta(hours=h))}.partial" for h in (7, 1))
        for name in (old, running, ".other.partial"):
            (dest / name).write_bytes(b"x")
        assert [p.name for p in prune(dest, keep=3, now=NOW)] == [old]  # one that may still be written is kept
        assert sorted(p.name for p in dest.iterdir()) == sorted([running, ".other.partial"])


def test_the_backed_up_volumes_are_the_ones_compose_mounts() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for vol in STACK_VOLUMES:
        assert vol.volume in compose["volumes"]
        assert f"{vol.volume}:{vol.mount}" in compose["services"][vol.service]["volumes"]
    assert "--web.enable-admin-api" in compose["services"]["prometheus"]["command"]
