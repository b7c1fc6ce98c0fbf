"""`backup --files-only` and `restore` at the command line, without Docker: the archive, its mode, and a
damaged or foreign archive refused with the reason before anything else happens (exit 1, no traceback)."""

from __future__ import annotations

import gzip
import stat
import tarfile
from pathlib import Path

import pytest

from tests.helpers import make_config_dir, run_cli


def test_files_only_backup_then_a_damaged_copy_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_config_dir(tmp_path)
    (tmp_path / "data/supervisor").mkdir(parents=True)
    (tmp_path / "data/supervisor/watchdog.json").write_text('{"services": {}}')
    (tmp_path / "data/batch").mkdir()  # BATCH_DATA_DIR: the Batch API's files
    (tmp_path / "data/batch/file-1.jsonl").write_text('{"custom_id": "a"}\n')
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "backup", "--files-only", "--to", str(tmp_path / "out"))
    assert code == 0, err
    (archive,) = (tmp_path / "out").iterdir()
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600 and "backup written" in err
    assert "prometheus: not included (no Docker access)" in err
    with tarfile.open(archive) as tar:
        assert {
            "files/.env",
            "files/.secrets",
            "files/data/supervisor/watchdog.json",
            "files/data/batch/file-1.jsonl",
        } <= set(tar.getnames())

    damaged = tmp_path / "damaged.tar.gz"
    data = bytearray(gzip.decompress(archive.read_bytes()))
    start = data.find(b'{"services": {}}')
    data[start : start + 2] = b"[]"  # same size, other bytes: only the checksum can tell
    damaged.write_bytes(gzip.compress(bytes(data)))
    code, _, err = run_cli(capsys, "restore", str(damaged), "--docker-host", "unix:///nonexistent.sock")
    assert code == 1 and "checksum or size differs" in err and "nothing was changed" in " ".join(err.split())
    assert "Traceback" not in err

    foreign = tmp_path / "foreign.tar.gz"
    foreign.write_bytes(gzip.compress(b"not a tar at all" * 100))
    code, _, err = run_cli(capsys, "restore", str(foreign))
    text = " ".join(err.split())
    assert code == 1 and ("not a gzip'd tar archive" in text or "no MANIFEST.json" in text), text
