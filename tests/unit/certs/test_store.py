"""The certificate store: live/<name> is a symlink swapped atomically; one previous version is kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from appliance.certs.selfsigned import make_self_signed
from appliance.certs.store import CertPaths, roll_back, write_pair


def _live(paths: CertPaths) -> bytes:
    return paths.fullchain("x").read_bytes()


def test_swaps_keep_current_and_previous_only(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    for n in range(3):
        write_pair(paths.live_dir("x"), f"cert{n}".encode(), f"key{n}".encode())
    assert paths.live_dir("x").is_symlink() and not os.path.isabs(os.readlink(paths.live_dir("x")))
    assert _live(paths) == b"cert2" and paths.privkey("x").stat().st_mode & 0o777 == 0o600
    versions = sorted((tmp_path / "live/.versions/x").iterdir())
    assert [(v / "fullchain.pem").read_bytes() for v in versions] == [b"cert1", b"cert2"]
    assert sorted(p.name for p in (tmp_path / "live").iterdir()) == [".versions", "x"]


def test_roll_back_points_at_the_previous_pair_and_drops_the_failed_one(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    assert not roll_back(paths.live_dir("x"))  # nothing yet
    write_pair(paths.live_dir("x"), b"old", b"k")
    assert not roll_back(paths.live_dir("x"))  # no previous
    write_pair(paths.live_dir("x"), b"new", b"k")
    assert roll_back(paths.live_dir("x"))
    assert _live(paths) == b"old"
    assert len(list((tmp_path / "live/.versions/x").iterdir())) == 1


def test_a_plain_directory_is_adopted_as_the_previous_version(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    paths.live_dir("x").mkdir(parents=True)
    paths.fullchain("x").write_bytes(b"by hand")
    write_pair(paths.live_dir("x"), b"new", b"k")
    assert _live(paths) == b"new"
    assert roll_back(paths.live_dir("x")) and _live(paths) == b"by hand"


def test_swapping_three_times_is_idempotent_in_shape(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    shapes = []
    for _ in range(3):
        write_pair(paths.live_dir("x"), b"c", b"k", chain_pem=b"chain")
        shapes.append(sorted(p.name for p in paths.live_dir("x").iterdir()))
    assert shapes == [["chain.pem", "fullchain.pem", "privkey.pem"]] * 3


@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to hand files to another owner (CI and this tier run as root)"
)
def test_a_pair_written_as_root_belongs_to_the_owner_of_the_certificate_area(tmp_path: Path) -> None:
    """The supervisor renews as root inside its container; the operator's host commands must still read the key."""
    area = tmp_path / "live"
    area.mkdir()
    os.chown(area, 12345, 12346)
    for _ in range(2):  # the first pair, then a renewal (a new version beside the previous one)
        cert, key = make_self_signed(["localhost"])
        write_pair(area / "localhost", cert, key)
    paths = [area / "localhost", *area.rglob("*")]
    owners = {(str(p.relative_to(tmp_path)), p.lstat().st_uid, p.lstat().st_gid) for p in paths}
    assert {(u, g) for _, u, g in owners} == {(12345, 12346)}, sorted(owners)
    assert stat.S_IMODE((area / "localhost" / "privkey.pem").stat().st_mode) == 0o600
