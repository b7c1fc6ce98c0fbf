"""Self-signed certificates (the default without a domain): made with ``cryptography``, key mode 0600."""

from __future__ import annotations

import ipaddress
import logging
import socket
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.certs.inspect import CertInfo, info_from_x509, utc_now
from appliance.certs.store import write_pair

_LOGGER = logging.getLogger(__name__)

SELF_SIGNED_DAYS = 397  # the longest lifetime browsers accept for a leaf


def host_names() -> list[str]:
    """The host's name and addresses a self-signed certificate should cover (always localhost/127.0.0.1)."""
    names = ["localhost", "127.0.0.1", "::1"]
    hostname = socket.gethostname()
    if hostname:
        names.append(hostname.lower())
    try:
        for info in socket.getaddrinfo(hostname, None):
            names.append(str(info[4][0]))
    except OSError:
        pass
    return list(dict.fromkeys(names))


def make_self_signed(
    names: list[str], *, now: datetime | None = None, days: int = SELF_SIGNED_DAYS, not_before: datetime | None = None
) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for ``names`` (first = subject CN). Pure apart from randomness."""
    now = now or utc_now()
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LLM appliance (self-signed)"),
        ]
    )
    start = not_before or now - timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def issue_self_signed(live_dir: Path, names: list[str] | None = None, *, now: datetime | None = None) -> CertInfo:
    """Write a new self-signed pair into ``live_dir`` (fullchain.pem, privkey.pem 0600) atomically."""
    names = names or host_names()
    cert_pem, key_pem = make_self_signed(names, now=now)
    write_pair(live_dir, cert_pem, key_pem)
    info = info_from_x509(x509.load_pem_x509_certificate(cert_pem))
    _LOGGER.info("self-signed certificate written", extra={"dir": str(live_dir), "sans": list(info.sans)})
    return info
