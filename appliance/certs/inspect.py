"""Reading certificates: the facts the rest of the appliance needs (subject, SANs, issuer, validity)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from appliance.certs.errors import CertError
from appliance.certs.store import CHAIN, FULLCHAIN


@dataclass(frozen=True)
class CertInfo:
    """One certificate (the leaf of a chain). Dates are timezone-aware UTC."""

    subject: str
    sans: tuple[str, ...]
    issuer: str
    serial: int
    not_before: datetime
    not_after: datetime
    ocsp_urls: tuple[str, ...] = ()

    @property
    def lifetime_days(self) -> float:
        return (self.not_after - self.not_before).total_seconds() / 86400

    def covers(self, name: str) -> bool:
        """True when a SAN matches ``name`` (DNS, one-label wildcard, or IP address)."""
        name = name.lower().rstrip(".")
        for san in self.sans:
            if san == name:
                return True
            if san.startswith("*.") and "." in name and name.split(".", 1)[1] == san[2:]:
                return True
        return False


def days_left(cert: CertInfo, now: datetime) -> float:
    """Days until ``cert`` expires (negative once it has)."""
    return (cert.not_after - now).total_seconds() / 86400


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def info_from_x509(cert: x509.Certificate) -> CertInfo:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [n.lower() for n in ext.get_values_for_type(x509.DNSName)]
        sans += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        ocsp = tuple(
            str(d.access_location.value) for d in aia if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP
        )
    except x509.ExtensionNotFound:
        ocsp = ()
    return CertInfo(
        subject=_common_name(cert.subject),
        sans=tuple(sans),
        issuer=_common_name(cert.issuer),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        ocsp_urls=ocsp,
    )


def read_pem(path: Path, what: str) -> bytes:
    """The bytes of a PEM file; a missing or unreadable one is a :class:`CertError` naming the file."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertError(f"{path}: expected a {what} file, found no such file") from None
    except OSError as err:
        raise CertError(f"{path}: expected a readable {what}, found {err.strerror or err}") from None


def load_chain(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file, leaf first. Raises :class:`CertError` naming the file."""
    data = read_pem(path, "PEM certificate")
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        chain = []
    if not chain:
        raise CertError(
            f"{path}: expected a PEM certificate (-----BEGIN CERTIFICATE-----), found none that parses"
            " — is it a key, DER, or truncated?"
        )
    return chain


def load_cert_info(path: Path) -> CertInfo:
    """The facts of the leaf certificate in ``path``. Raises :class:`CertError` for a missing or bad file."""
    return info_from_x509(load_chain(path)[0])


def ocsp_stapling_possible(live_dir: Path) -> bool:
    """True when the live certificate names an OCSP responder and its issuer chain is there (chain.pem):
    the renderer turns stapling on only then (``render_nginx(..., ocsp=...)``)."""
    try:
        info = load_cert_info(live_dir / FULLCHAIN)
    except CertError:
        return False
    return bool(info.ocsp_urls) and (live_dir / CHAIN).is_file()


def utc_now() -> datetime:
    return datetime.now(UTC)
