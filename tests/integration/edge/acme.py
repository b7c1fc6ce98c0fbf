"""Pebble (Let's Encrypt's ACME test server) and its mock DNS on loopback, for the certificate tests."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.edge.conftest import free_port, stop, wait_port
from tests.unit.certs.certmaker import Ca, _pem_key

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
CHALLTESTSRV = shutil.which("pebble-challtestsrv") or "/usr/bin/pebble-challtestsrv"


@dataclass
class Pebble:
    directory: str
    ca_bundle: Path
    dns_management: str
    proc: subprocess.Popen
    dns_proc: subprocess.Popen

    def point(self, host: str, address: str) -> None:
        """Make the mock DNS answer ``address`` for ``host`` (pebble validates against it)."""
        httpx.post(f"{self.dns_management}/add-a", json={"host": host, "addresses": [address]}).raise_for_status()

    def unpoint(self, host: str) -> None:
        httpx.post(f"{self.dns_management}/clear-a", json={"host": host}).raise_for_status()


def _tls_pair(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a localhost/127.0.0.1 certificate for pebble's own HTTPS endpoint."""
    ca = Ca("pebble test root")
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=True,
        )
        .sign(ca.key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    (directory / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(_pem_key(leaf_key))
    return directory / "ca.pem", directory / "cert.pem", directory / "key.pem"


@contextmanager
def running_pebble(root: Path, http_port: int) -> Iterator[Pebble]:
    """pebble + pebble-challtestsrv on 127.0.0.1; HTTP-01 challenges go to ``http_port`` (the test nginx)."""
    ca, cert, key = _tls_pair(root / "tls")
    dns_port, dns_mgmt, acme_port, acme_mgmt = free_port(), free_port(), free_port(), free_port()
    dns = subprocess.Popen(
        [
            CHALLTESTSRV,
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            f"127.0.0.1:{dns_port}",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            f"127.0.0.1:{dns_mgmt}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme_port}",
            "managementListenAddress": f"127.0.0.1:{acme_mgmt}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (root / "pebble.json").write_text(json.dumps(config))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    log = (root / "pebble.log").open("w")
    pebble = subprocess.Popen(
        [PEBBLE, "-config", str(root / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns_port}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(dns_mgmt, dns, "pebble-challtestsrv")
        wait_port(acme_port, pebble, "pebble")
        yield Pebble(f"https://localhost:{acme_port}/dir", ca, f"http://127.0.0.1:{dns_mgmt}", pebble, dns)
    finally:
        stop(pebble)
        stop(dns)
        log.close()
