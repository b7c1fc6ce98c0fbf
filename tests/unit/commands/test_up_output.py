"""What `up` prints: dashboard lines that say when Grafana is off, and commands that exist."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from appliance.commands import up
from appliance.config import ConfigFiles, load_config
from appliance.errors import ApplianceError
from tests.helpers import make_config_dir, set_line


def _config(root: Path, **env: str):
    make_config_dir(root)
    for key, value in env.items():
        set_line(root / ".env", key, value)
    return load_config(
        ConfigFiles(env=root / ".env", secrets=root / ".secrets", models=root / "models.yaml"), gpu_count=0
    )


def test_grafana_is_off_in_local_mode(tmp_path: Path) -> None:
    config = _config(tmp_path)
    normal = up.dashboard_lines(config, local=False)
    assert "Grafana:    https://127.0.0.1/grafana/" in normal and "/prometheus/" in normal
    local = up.dashboard_lines(config, local=True)
    assert "Grafana:    off (--local" in local and "/grafana/" not in local and "/prometheus/" in local


def test_dashboards_disabled_says_so(tmp_path: Path) -> None:
    lines = up.dashboard_lines(_config(tmp_path, DASHBOARDS_ENABLED="false"), local=False)
    assert lines == "Grafana:    off (DASHBOARDS_ENABLED=false)\nPrometheus: off (DASHBOARDS_ENABLED=false)\n"


def test_a_failed_model_points_at_a_command_that_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(up, "_probe", lambda url: {"status": "failed", "models_ready": 0, "models_total": 1})
    with pytest.raises(ApplianceError) as raised:
        up.wait_ready(_config(tmp_path), timeout=5, interval=0)
    command = str(raised.value).rsplit("see: ", 1)[1]
    assert shlex.split(command)[:3] == ["python", "-m", "appliance"] and "make logs serve" not in str(raised.value)
    from appliance.cli import build_parser

    assert build_parser().parse_args(shlex.split(command)[3:]).services == ["serve"]
