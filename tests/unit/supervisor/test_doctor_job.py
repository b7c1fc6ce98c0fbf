"""The supervisor's doctor job runs the checks that say ``in_stack`` (a property of the check), one gauge each."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from appliance.config import ConfigFiles
from appliance.doctor import checks as checks_module
from appliance.doctor.base import Check
from appliance.doctor.checks import all_checks
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Level
from appliance.supervisor.jobs import DoctorJob
from appliance.telemetry.notifier import SupervisorNotifier
from appliance.telemetry.supervisor_metrics import SupervisorMetrics

# what the supervisor watched when the list was a tuple in supervisor/jobs.py
IN_STACK = {
    "config",
    "docker-engine",
    "disk",
    "certificate",
    "clock",
    "unsafe-flags",
    "services",
    "restarts",
    "gpu-driver",
    "gpu-count",
}


def test_the_in_stack_checks() -> None:
    assert {c.slug for c in all_checks() if c.in_stack} == IN_STACK


class _Fine(Check):
    slug, title, needs_config, in_stack = "fine", "fine", False, True

    def run(self, ctx):
        return [self.ok()]


class _Broken(Check):
    slug, title, needs_config, in_stack = "broken", "broken", False, True

    def run(self, ctx):
        return [self.problem(Level.ERROR, "x", "y", "z")]


class _HostOnly(Check):
    slug, title, needs_config = "host-only", "host only", False

    def run(self, ctx):
        return [self.ok()]


def test_the_job_runs_only_in_stack_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(checks_module, "all_checks", lambda: [_Fine(), _Broken(), _HostOnly()])
    metrics = SupervisorMetrics()
    files = ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets", models=tmp_path / "models.yaml")
    asyncio.run(DoctorJob(DoctorContext(files=files, config=None), SupervisorNotifier(metrics))())
    text = generate_latest(metrics.registry).decode()
    assert 'appliance_supervisor_check_ok{check="fine"} 1.0' in text
    assert 'appliance_supervisor_check_ok{check="broken"} 0.0' in text
    assert "host-only" not in text
