"""The one atomic writer: the target holds the old content or the new, with the given mode; no temp file left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.atomic import write_atomic


def test_writes_text_and_bytes_with_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file"
    write_atomic(target, "héllo\n", mode=0o600)
    assert target.read_text(encoding="utf-8") == "héllo\n" and target.stat().st_mode & 0o777 == 0o600
    write_atomic(target, b"\x00bytes", mode=0o644)
    assert target.read_bytes() == b"\x00bytes" and target.stat().st_mode & 0o777 == 0o644
    assert os.listdir(target.parent) == ["file"]


def test_a_failed_write_keeps_the_old_content_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "file"
    write_atomic(target, "old")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        write_atomic(target, "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["file"]
