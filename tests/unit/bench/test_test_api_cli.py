"""scripts/test_api.py's TLS options: --cacert trusts the given certificate, --insecure verifies nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.unit.certs.certmaker import Ca

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import test_api  # noqa: E402

BASE = ["--url", "https://127.0.0.1", "--key", "sk-test"]


def test_cacert_is_trusted_on_top_of_the_system_cas(tmp_path: Path) -> None:
    cert = tmp_path / "ca.pem"
    cert.write_bytes(Ca("Appliance Test Root").cert.public_bytes(serialization.Encoding.PEM))
    verify = test_api.tls_verify(test_api.parse_args([*BASE, "--cacert", str(cert)]))
    assert not isinstance(verify, bool)
    names = [dict(x[0] for x in c["subject"]).get("commonName") for c in verify.get_ca_certs()]
    assert "Appliance Test Root" in names


def test_insecure_and_default() -> None:
    assert test_api.tls_verify(test_api.parse_args([*BASE, "--insecure"])) is False
    assert test_api.tls_verify(test_api.parse_args(BASE)) is True


def test_cacert_and_insecure_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.pem").write_text("")
    with pytest.raises(SystemExit):
        test_api.parse_args([*BASE, "--insecure", "--cacert", str(tmp_path / "c.pem")])
    assert "not allowed with" in capsys.readouterr().err
