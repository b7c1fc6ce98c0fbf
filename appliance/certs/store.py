"""Where certificates live and how they are swapped in: ``<root>/live/<name>/{fullchain,privkey}.pem``.

Which ``<name>`` nginx serves for a config is answered here once (:func:`served_name`): nginx's renderer,
renewal, doctor, the supervisor's days-left metric and ``up`` all ask it.

``live/<name>`` is a relative symlink to a version directory ``live/.versions/<name>/<version>/`` (as
certbot does with its archive). A swap writes the new pair into a fresh version directory, then replaces
the symlink with ``os.replace`` — one atomic rename, so nginx always finds a complete pair, old or new.
The previous version is kept for :func:`roll_back`; older ones are pruned.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config.settings import Settings

DEFAULT_CERTS_ROOT = Path("data/certs")  # on the host, relative to the project (the supervisor's too)
SELF_SIGNED_NAME = "localhost"  # the live name without a DOMAIN
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

    def served_dir(self, settings: Settings) -> Path:
        """The live directory nginx serves for these settings (see :func:`served_name`)."""
        return self.live_dir(served_name(settings))

    def served_fullchain(self, settings: Settings) -> Path:
        return self.served_dir(settings) / FULLCHAIN

    def served_privkey(self, settings: Settings) -> Path:
        return self.served_dir(settings) / PRIVKEY

    @property
    def webroot(self) -> Path:
        return self.root / "acme-webroot"

    @property
    def certbot_dir(self) -> Path:
        return self.root / "certbot"


def served_name(settings: Settings) -> str:
    """The ``live/<name>`` nginx serves: DOMAIN when set, else ``localhost`` (the self-signed pair). Whatever
    else is under ``live/`` (a pair left from an earlier DOMAIN) is not served and not watched."""
    return settings.domain or SELF_SIGNED_NAME


def served_certificate(settings: Settings, root: Path = DEFAULT_CERTS_ROOT) -> Path:
    """The certificate chain (fullchain.pem) nginx serves for these settings."""
    return CertPaths(root).served_fullchain(settings)


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


def _versions(live_dir: Path) -> Path:
    return live_dir.parent / ".versions" / live_dir.name


def _target(live_dir: Path) -> Path | None:
    if live_dir.is_symlink():
        return (live_dir.parent / os.readlink(live_dir)).resolve()
    return None


def _point(live_dir: Path, version: Path) -> None:
    """Atomically make ``live_dir`` a symlink to ``version`` (a relative link, valid inside a bind mount)."""
    link = live_dir.parent / f".{live_dir.name}.link"
    link.unlink(missing_ok=True)
    os.symlink(os.path.relpath(version, live_dir.parent), link)
    _owned_like(live_dir.parent, [link])
    os.replace(link, live_dir)


def _owned_like(parent: Path, paths: list[Path]) -> None:
    """As root (the supervisor's container renews certificates), give ``paths`` the owner of ``parent`` (the
    operator who ran ``make up``): root-owned files would leave the host's ``doctor``, ``backup`` and ``certs``
    commands unable to read the key or remove old versions."""
    if os.geteuid() != 0:
        return
    owner = parent.stat()
    for path in paths:
        os.lchown(path, owner.st_uid, owner.st_gid)


def swap_in(staging: Path, live_dir: Path) -> None:
    """Make ``staging`` the live pair (it is moved into the versions); keep the previous version."""
    versions = _versions(live_dir)
    versions.mkdir(parents=True, exist_ok=True)
    _owned_like(live_dir.parent, [versions.parent, versions, staging, *staging.rglob("*")])
    if live_dir.exists() and not live_dir.is_symlink():  # a plain directory (placed by hand): adopt it once
        os.replace(live_dir, versions / "0-adopted")
    previous = _target(live_dir)
    version = versions / f"{time.time_ns()}"
    os.replace(staging, version)
    _point(live_dir, version)
    if previous is None and (versions / "0-adopted").exists():
        previous = (versions / "0-adopted").resolve()
    for old in versions.iterdir():
        if old.resolve() not in {version.resolve(), previous}:
            shutil.rmtree(old, ignore_errors=True)


def roll_back(live_dir: Path) -> bool:
    """Point ``live_dir`` back at the previous version (after a swapped-in pair failed nginx -t)."""
    current = _target(live_dir)
    versions = _versions(live_dir)
    if current is None or not versions.is_dir():
        return False
    others = sorted((v for v in versions.iterdir() if v.resolve() != current), key=lambda v: v.name)
    if not others:
        return False
    _point(live_dir, others[-1])
    shutil.rmtree(current, ignore_errors=True)
    return True
