"""Provided-mode checks: key matches, chain present, dates, SAN — each rejected with a clear message."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from appliance.certs.errors import CertError
from appliance.certs.inspect import load_cert_info
from appliance.certs.validate import check_pair
from tests.unit.certs.certmaker import NOW, Ca

DOMAIN = "llm.example.com"


def test_a_good_pair_passes_and_is_described(tmp_path: Path) -> None:
    cert, key = Ca().write(tmp_path, [DOMAIN, "www.example.com"])
    info = check_pair(cert, key, domain=DOMAIN, now=NOW)
    assert info.subject == DOMAIN and info.sans == (DOMAIN, "www.example.com")
    assert info.issuer == "Test Intermediate CA" and info.not_after.tzinfo is not None
    assert load_cert_info(cert) == info


def test_wrong_key(tmp_path: Path) -> None:
    ca = Ca()
    cert, _ = ca.write(tmp_path / "a", [DOMAIN])
    _, other_key = ca.write(tmp_path / "b", [DOMAIN])
    with pytest.raises(CertError, match=r"privkey.pem: expected the private key of the certificate in .*different key"):
        check_pair(cert, other_key, domain=DOMAIN, now=NOW)


def test_expired(tmp_path: Path) -> None:
    cert, key = Ca().write(tmp_path, [DOMAIN], start=NOW - timedelta(days=100), days=90)
    with pytest.raises(CertError, match=r"expected a valid certificate, found one that expired on 2026-05-22"):
        check_pair(cert, key, domain=DOMAIN, now=NOW)


def test_not_yet_valid(tmp_path: Path) -> None:
    cert, key = Ca().write(tmp_path, [DOMAIN], start=NOW + timedelta(days=2))
    with pytest.raises(CertError, match="valid only from"):
        check_pair(cert, key, domain=DOMAIN, now=NOW)


def test_wrong_san(tmp_path: Path) -> None:
    cert, key = Ca().write(tmp_path, ["other.example.com"])
    with pytest.raises(CertError, match=rf"covering DOMAIN={DOMAIN}, found: other.example.com"):
        check_pair(cert, key, domain=DOMAIN, now=NOW)


def test_wildcard_covers_one_label(tmp_path: Path) -> None:
    cert, key = Ca().write(tmp_path, ["*.example.com"])
    assert check_pair(cert, key, domain=DOMAIN, now=NOW)
    with pytest.raises(CertError, match="covering DOMAIN=a.llm.example.com"):
        check_pair(cert, key, domain="a.llm.example.com", now=NOW)


def test_missing_chain(tmp_path: Path) -> None:
    cert, key = Ca().write(tmp_path, [DOMAIN], chain=False)
    with pytest.raises(CertError, match="expected the full chain .* found only the leaf"):
        check_pair(cert, key, domain=DOMAIN, now=NOW)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    ca = Ca()
    cert, _ = ca.write(tmp_path / "a", ["other.example.com"], chain=False, start=NOW - timedelta(days=200))
    _, key = ca.write(tmp_path / "b", [DOMAIN])
    with pytest.raises(CertError, match="^4 problems: ") as err:
        check_pair(cert, key, domain=DOMAIN, now=NOW)
    for part in ("different key", "only the leaf", "expired", "DOMAIN="):
        assert part in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "expected a PEM certificate file, found no such file"),
        (b"not a certificate", "found none that parses"),
    ],
)
def test_missing_or_garbage_certificate(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "fullchain.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CertError, match=message):
        load_cert_info(path)


def test_key_file_problems(tmp_path: Path) -> None:
    cert, key = Ca().write(tmp_path, [DOMAIN])
    with pytest.raises(CertError, match="expected a PEM private key file, found no such file"):
        check_pair(cert, tmp_path / "nope.pem", domain=DOMAIN, now=NOW)
    key.write_bytes(cert.read_bytes())
    with pytest.raises(CertError, match="expected an unencrypted PEM private key"):
        check_pair(cert, key, domain=DOMAIN, now=NOW)


def test_ocsp_stapling_needs_a_responder_and_a_chain(tmp_path: Path) -> None:
    from appliance.certs.inspect import ocsp_stapling_possible
    from appliance.certs.selfsigned import issue_self_signed

    issue_self_signed(tmp_path / "live", ["localhost"])
    assert not ocsp_stapling_possible(tmp_path / "live")  # no OCSP URL in a self-signed certificate
    assert not ocsp_stapling_possible(tmp_path / "missing")
    live = tmp_path / "ca-issued"
    Ca().write(live, [DOMAIN], ocsp="http://ocsp.example.com")
    assert load_cert_info(live / "fullchain.pem").ocsp_urls == ("http://ocsp.example.com",)
    assert not ocsp_stapling_possible(live)  # no chain.pem yet
    (live / "chain.pem").write_bytes(b"issuer")
    assert ocsp_stapling_possible(live)
