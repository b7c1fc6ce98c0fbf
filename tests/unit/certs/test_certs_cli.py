"""``python -m appliance certs status|renew`` in-process: output, JSON, exit codes (self-signed/provided)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import make_config_dir, run_cli, set_line
from tests.unit.certs.certmaker import Ca

DOMAIN = "llm.example.com"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_config_dir(tmp_path)
    return tmp_path


def test_status_without_a_certificate_says_how_to_make_one(workdir: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "certs", "status")
    assert code == 1 and "no such file" in err and "certs renew" in err and "Traceback" not in err


def test_renew_then_status(workdir: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "certs", "renew")
    assert code == 0 and "renewed" in err and "not reloaded" in err
    assert (workdir / "data/certs/live/localhost/privkey.pem").stat().st_mode & 0o777 == 0o600
    code, out, _ = run_cli(capsys, "certs", "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["ok"] and status["mode"] == "self-signed" and "localhost" in status["sans"]
    assert status["days_left"] > 300 and status["due"] is False
    code, out, _ = run_cli(capsys, "certs", "status")
    assert code == 0 and "days left" in out and "self-signed" in out
    code, out, _ = run_cli(capsys, "certs", "renew", "--json")
    assert code == 0 and json.loads(out)["renewed"] is False and json.loads(out)["reason"].startswith("not due")


def test_provided_mismatch_fails_with_exit_1_and_a_clear_message(workdir: Path, capsys) -> None:
    ca = Ca()
    now = datetime.now(UTC)
    cert, _ = ca.write(workdir / "mine", ["other.example.com"], start=now - timedelta(days=1))
    set_line(workdir / ".env", "TLS_MODE", "provided")
    set_line(workdir / ".env", "DOMAIN", DOMAIN)
    set_line(workdir / ".env", "TLS_CERT_PATH", str(cert))
    set_line(workdir / ".env", "TLS_KEY_PATH", str(workdir / "mine/privkey.pem"))
    code, _, err = run_cli(capsys, "certs", "renew", "--certs-dir", str(workdir / "c"))
    assert code == 1 and f"covering DOMAIN={DOMAIN}, found: other.example.com" in err
    assert "Traceback" not in err and not (workdir / "c/live" / DOMAIN).exists()


def test_status_flags_a_certificate_the_mode_does_not_want(workdir: Path, capsys) -> None:
    assert run_cli(capsys, "certs", "renew")[0] == 0
    set_line(workdir / ".env", "DOMAIN", "llm.example.com")  # the live pair is for localhost
    code, out, _ = run_cli(capsys, "certs", "status", "--json")
    assert code == 1 and json.loads(out)["problems"]


def test_config_errors_exit_2(workdir: Path, capsys) -> None:
    set_line(workdir / ".env", "TLS_MODE", "magic")
    assert run_cli(capsys, "certs", "status")[0] == 2


@pytest.mark.parametrize("command", ["certs", "certs status", "certs renew"])
def test_help(capsys, command: str) -> None:
    code, out, _ = run_cli(capsys, *command.split(), "--help")
    assert code == 0 and out.startswith("usage: python -m appliance")
