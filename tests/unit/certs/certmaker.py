"""Certificates with chosen names and dates for the certs tests: a tiny CA, leaves, self-signed pairs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Ca:
    def __init__(self, cn: str = "Test Intermediate CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=3650))
            .not_valid_after(NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def leaf(self, names: list[str], *, start: datetime = NOW - timedelta(days=1), days: int = 90, ocsp: str = ""):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        )
        if ocsp:
            access = x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp)
            )
            builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key

    def write(self, directory: Path, names: list[str], *, chain: bool = True, **dates) -> tuple[Path, Path]:
        cert, key = self.leaf(names, **dates)
        directory.mkdir(parents=True, exist_ok=True)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        if chain:
            pem += self.cert.public_bytes(serialization.Encoding.PEM)
        (directory / "fullchain.pem").write_bytes(pem)
        (directory / "privkey.pem").write_bytes(_pem_key(key))
        return directory / "fullchain.pem", directory / "privkey.pem"
