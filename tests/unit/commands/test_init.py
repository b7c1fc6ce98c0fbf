"""``init`` (run by ``make up``): copies examples when missing, generates passwords, idempotent."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.config.dotenv import parse_dotenv
from tests.helpers import ROOT, run_cli


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (".env.example", ".secrets.example"):
        shutil.copyfile(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "0")
    return tmp_path


def test_init_three_times_is_idempotent(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "init")
    assert code == 0
    assert "created .env" in err and "created .secrets" in err and "generated GRAFANA_ADMIN_PASSWORD" in err
    first = {name: (project / name).read_text() for name in (".env", ".secrets")}
    for _ in range(2):
        code, _, err = run_cli(capsys, "init")
        assert code == 0 and "nothing to do" in err
        assert {name: (project / name).read_text() for name in first} == first
    for name in (".env", ".secrets"):
        assert stat.S_IMODE((project / name).stat().st_mode) == 0o600
    secrets = parse_dotenv(first[".secrets"], ".secrets").values()
    assert len(secrets["GRAFANA_ADMIN_PASSWORD"]) >= 24
    assert secrets["GRAFANA_ADMIN_PASSWORD"] != secrets["DASHBOARD_PASSWORD"]
    assert load_config(ConfigFiles(), gpu_count=0).secrets.grafana_admin_password == secrets["GRAFANA_ADMIN_PASSWORD"]


def test_init_keeps_existing_values_and_fills_empty_passwords(project: Path, capsys) -> None:
    (project / ".env").write_text("HTTP_PORT=8080\n")
    (project / ".secrets").write_text("GRAFANA_ADMIN_PASSWORD=mine-and-long-enough\nDASHBOARD_PASSWORD=\n")
    assert run_cli(capsys, "init")[0] == 0
    assert (project / ".env").read_text() == "HTTP_PORT=8080\n"
    values = parse_dotenv((project / ".secrets").read_text(), ".secrets").values()
    assert values["GRAFANA_ADMIN_PASSWORD"] == "mine-and-long-enough"
    assert len(values["DASHBOARD_PASSWORD"]) >= 24


def test_init_without_examples_is_a_clear_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "init")
    assert code == 2
    assert ".env.example is missing" in err
