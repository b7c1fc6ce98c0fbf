"""The nightly backup job reports a failure (Docker unreachable here) on its gauge and leaves no archive."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.supervisor.backup_job import BackupJob
from appliance.telemetry.notifier import SupervisorNotifier
from appliance.telemetry.supervisor_metrics import SupervisorMetrics
from tests.helpers import make_config_dir


def test_a_failed_backup_sets_the_gauge_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_config_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = load_config(ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets"), gpu_count=0)
    metrics = SupervisorMetrics()
    job = BackupJob(
        config, SupervisorNotifier(metrics), root=tmp_path, docker_host=f"unix://{tmp_path}/no-such-docker.sock"
    )
    assert job.run_once() is False
    assert metrics.registry.get_sample_value("appliance_backup_last_ok") == 0.0
    backups = tmp_path / config.settings.backup_dir
    assert not backups.exists() or os.listdir(backups) == []
