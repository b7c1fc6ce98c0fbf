"""Running certbot non-interactively (HTTP-01 through the shared webroot) into its own state directory."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from appliance.certs.errors import CertError

_LOGGER = logging.getLogger(__name__)

_ENTRY = "import sys; from certbot.main import main; sys.exit(main())"


@dataclass(frozen=True)
class CertbotRequest:
    domain: str
    email: str
    server: str  # ACME directory URL
    webroot: Path
    state_dir: Path  # certbot's config/, work/ and logs/ live under it
    cert_name: str
    force: bool = False
    dry_run: bool = False

    def argv(self) -> list[str]:
        args = [
            "certonly",
            "--non-interactive",
            "--agree-tos",
            "-m",
            self.email,
            "--server",
            self.server,
            "--webroot",
            "-w",
            str(self.webroot),
            "-d",
            self.domain,
            "--cert-name",
            self.cert_name,
            "--config-dir",
            str(self.state_dir / "config"),
            "--work-dir",
            str(self.state_dir / "work"),
            "--logs-dir",
            str(self.state_dir / "logs"),
            "--key-type",
            "ecdsa",
            "--no-random-sleep-on-renew",
        ]
        if self.dry_run:
            args.append("--dry-run")
        elif self.force:
            args.append("--force-renewal")
        else:
            args.append("--keep-until-expiring")
        return args

    @property
    def lineage(self) -> Path:
        return self.state_dir / "config" / "live" / self.cert_name


def run_certbot(request: CertbotRequest, *, env: Mapping[str, str] | None = None, timeout: float = 300) -> Path:
    """Run certbot; return its live directory for the name. CertError (with certbot's last words) on failure."""
    for sub in ("config", "work", "logs"):
        (request.state_dir / sub).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", _ENTRY, *request.argv()]
    _LOGGER.info(
        "running certbot",
        extra={"domain": request.domain, "server": request.server, "force": request.force, "dry_run": request.dry_run},
    )
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
        )
    except subprocess.TimeoutExpired:
        raise CertError(
            f"certbot: expected an answer from {request.server} within {timeout:.0f} s, found none "
            "(hint: is the ACME server reachable?)"
        ) from None
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-4:])
        raise CertError(
            f"certbot failed (exit {done.returncode}) for {request.domain} at {request.server}: {tail} "
            f"(full log: {request.state_dir / 'logs'})"
        )
    return request.lineage
