"""Where certificates live and how they are swapped in: ``<root>/live/<name>/{fullchain,privkey}.pem``.

A swap writes the new pair into a fresh sibling directory, then renames directories, so nginx never sees a
certificate without its key; the previous pair is kept in ``<name>.previous`` until the next swap.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

FULLCHAIN = "fullchain.pem"
PRIVKEY = "privkey.pem"
CHAIN = "chain.pem"


@dataclass(frozen=True)
class CertPaths:
    """The appliance's certificate area on the host: live pairs, the ACME webroot, certbot's own dirs."""

    root: Path

    @property
    def live(self) -> Path:
        return self.root / "live"

    def live_dir(self, name: str) -> Path:
        return self.live / name

    def fullchain(self, name: str) -> Path:
        return self.live_dir(name) / FULLCHAIN

    def privkey(self, name: str) -> Path:
        return self.live_dir(name) / PRIVKEY

    @property
    def webroot(self) -> Path:
        return self.root / "acme-webroot"

    @property
    def certbot_dir(self) -> Path:
        return self.root / "certbot"


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)


def write_pair(live_dir: Path, cert_pem: bytes, key_pem: bytes, chain_pem: bytes | None = None) -> None:
    """Put a certificate and key into ``live_dir`` atomically (staged in a sibling, then renamed)."""
    parent = live_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{live_dir.name}.new-"))
    try:
        os.chmod(staging, 0o755)
        _write(staging / FULLCHAIN, cert_pem, 0o644)
        _write(staging / PRIVKEY, key_pem, 0o600)
        if chain_pem:
            _write(staging / CHAIN, chain_pem, 0o644)
        swap_in(staging, live_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def previous_dir(live_dir: Path) -> Path:
    return live_dir.with_name(live_dir.name + ".previous")


def swap_in(staging: Path, live_dir: Path) -> None:
    """Make ``staging`` the live directory; the old one becomes ``<name>.previous`` (the rollback copy).

    Two renames: old → previous, staging → live. Between them nginx may briefly find no files, but nginx
    reads certificates only on start/reload, which the caller runs after the swap.
    """
    previous = previous_dir(live_dir)
    if previous.exists():
        shutil.rmtree(previous)
    if live_dir.exists():
        os.replace(live_dir, previous)
    os.replace(staging, live_dir)


def roll_back(live_dir: Path) -> bool:
    """Put ``<name>.previous`` back as the live pair (after a swapped-in pair failed nginx -t)."""
    previous = previous_dir(live_dir)
    if not previous.exists():
        return False
    failed = live_dir.with_name(live_dir.name + ".failed")
    if failed.exists():
        shutil.rmtree(failed)
    if live_dir.exists():
        os.replace(live_dir, failed)
    os.replace(previous, live_dir)
    shutil.rmtree(failed, ignore_errors=True)
    return True
