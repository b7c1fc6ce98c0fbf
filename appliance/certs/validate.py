"""Checks of a certificate/key pair before nginx may serve it: parses, key matches, chain, SAN, dates.

Every problem is collected (not just the first) and raised once as a :class:`CertError` whose message
names the file, says what was expected and what was found, and how to fix it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PrivateKeyTypes, PublicKeyTypes

from appliance.certs.errors import CertError
from appliance.certs.inspect import CertInfo, info_from_x509, load_chain, read_pem


def load_key(path: Path) -> PrivateKeyTypes:
    data = read_pem(path, "PEM private key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        found = "an encrypted key" if b"ENCRYPTED" in data else "no unencrypted PEM private key"
        raise CertError(
            f"{path}: expected an unencrypted PEM private key, found {found} "
            "(hint: decrypt it with openssl pkey -in KEY -out KEY.plain)"
        ) from err


def _public_bytes(key: PublicKeyTypes | CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_pair(
    cert_path: Path,
    key_path: Path,
    *,
    domain: str,
    now: datetime,
    require_chain: bool = True,
) -> CertInfo:
    """The leaf's facts when the pair is servable for ``domain`` at ``now``; else CertError with every problem."""
    chain = load_chain(cert_path)
    key = load_key(key_path)
    leaf = chain[0]
    info = info_from_x509(leaf)
    problems: list[str] = []
    if _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):
        problems.append(
            f"{key_path}: expected the private key of the certificate in {cert_path}, found a "
            "different key (hint: the key file belongs to another certificate)"
        )
    self_issued = leaf.issuer == leaf.subject
    if require_chain and not self_issued and len(chain) < 2:
        problems.append(
            f"{cert_path}: expected the full chain (leaf, then intermediates), found only the leaf "
            f"(issued by {info.issuer!r}) (hint: append the CA's intermediate certificate)"
        )
    elif len(chain) >= 2 and leaf.issuer != chain[1].subject:
        problems.append(
            f"{cert_path}: expected the leaf's issuer {info.issuer!r} second in the chain, found "
            f"{info_from_x509(chain[1]).subject!r} (hint: order the file leaf first)"
        )
    if now >= info.not_after:
        problems.append(
            f"{cert_path}: expected a valid certificate, found one that expired on "
            f"{info.not_after:%Y-%m-%d %H:%M} UTC (hint: renew it or provide a new one)"
        )
    elif now < info.not_before:
        problems.append(
            f"{cert_path}: expected a certificate valid now, found one valid only from "
            f"{info.not_before:%Y-%m-%d %H:%M} UTC (hint: check the clock)"
        )
    if domain and not info.covers(domain):
        sans = ", ".join(info.sans) or "none"
        problems.append(
            f"{cert_path}: expected a subject alternative name covering DOMAIN={domain}, found: "
            f"{sans} (hint: issue the certificate for {domain}, or change DOMAIN)"
        )
    if problems:
        raise CertError(
            "; ".join(problems) if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(problems)
        )
    return info


def chain_pem(cert_path: Path) -> bytes:
    """The issuer part of a full chain (everything after the leaf), for OCSP stapling."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in load_chain(cert_path)[1:])
