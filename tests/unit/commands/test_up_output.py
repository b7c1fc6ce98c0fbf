"""What `up` prints: dashboard lines that say when Grafana is off, and commands that exist."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from appliance.commands import up
from appliance.config import ConfigFiles, load_config
from appliance.docker.errors import ComposeError
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


class _Compose:
    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, []

    def run(self, *args: str, timeout: float = 0, stream: bool = False) -> str:
        self.calls.append(args)
        if len(self.calls) <= self.failures:
            raise ComposeError("docker compose up -d --remove-orphans failed (exit 1): (output above)")
        return ""


def test_compose_up_is_tried_once_more_after_a_pause(capsys: pytest.CaptureFixture[str]) -> None:
    pauses: list[float] = []
    compose = _Compose(failures=1)
    up.compose_up(compose, sleep=pauses.append)  # type: ignore[arg-type]
    assert compose.calls == [("up", "-d", "--remove-orphans")] * 2 and pauses == [up.COMPOSE_UP_PAUSE_S]
    assert "trying once more" in capsys.readouterr().err


def test_compose_up_failing_twice_is_reported() -> None:
    pauses: list[float] = []
    compose = _Compose(failures=2)
    with pytest.raises(ComposeError, match="failed"):
        up.compose_up(compose, sleep=pauses.append)  # type: ignore[arg-type]
    assert len(compose.calls) == up.COMPOSE_UP_TRIES and len(pauses) == up.COMPOSE_UP_TRIES - 1
