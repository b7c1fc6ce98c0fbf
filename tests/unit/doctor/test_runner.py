"""The runner: concurrent checks, a hanging check times out, a crashing one is a finding; exit codes; JSON."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from appliance.doctor.base import Check
from appliance.doctor.finding import Finding, Level
from appliance.doctor.report import as_json
from appliance.doctor.runner import exit_code, run_checks
from tests.helpers import run_cli

release = threading.Event()


class Fine(Check):
    slug, title, needs_config = "fine", "fine", False

    def run(self, ctx):
        return [self.ok(found="yes")]


class Hangs(Check):
    slug, title, needs_config, timeout_s = "hangs", "hangs", False, 0.2

    def run(self, ctx):
        release.wait(30)
        return [self.ok()]


class Crashes(Check):
    slug, title, needs_config = "crashes", "crashes", False

    def run(self, ctx):
        raise KeyError("boom")


class StackOnly(Check):
    slug, title, needs_config, needs_stack = "stack", "stack", False, True

    def run(self, ctx):
        return [Finding(self.slug, Level.ERROR, self.title)]


def test_timeouts_and_crashes_become_findings(make_ctx) -> None:
    ctx = make_ctx()
    try:
        results = asyncio.run(run_checks([Fine(), Hangs(), Crashes(), StackOnly()], ctx))
    finally:
        release.set()
    by_slug = {r.slug: r.findings[0] for r in results}
    assert by_slug["fine"].level is Level.OK
    assert by_slug["hangs"].level is Level.WARNING and "timed out" in by_slug["hangs"].found
    assert by_slug["crashes"].level is Level.ERROR and "KeyError" in by_slug["crashes"].found
    assert exit_code(results) == 1
    data = as_json(results, 1, 0.5)
    assert data["counts"] == {"ok": 1, "info": 0, "warning": 1, "error": 2}
    ctx.preflight = True
    assert [r.slug for r in asyncio.run(run_checks([Fine(), StackOnly()], ctx))] == ["fine"]
    assert exit_code(asyncio.run(run_checks([Fine()], ctx))) == 0


def test_doctor_cli_json_without_docker(make_ctx, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    ctx = make_ctx()
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "0")
    code, out, _ = run_cli(
        capsys,
        "doctor",
        "--preflight",
        "--json",
        "--env",
        str(ctx.files.env),
        "--secrets",
        str(ctx.files.secrets),
        "--docker-host",
        "unix:///nonexistent/docker.sock",
    )
    data = json.loads(out)
    assert code == 1 and data["exit_code"] == 1
    engine = next(c for c in data["checks"] if c["check"] == "docker-engine")
    assert engine["findings"][0]["level"] == "error" and "nonexistent" in engine["findings"][0]["found"]
    assert not any(c["check"] == "services" for c in data["checks"])  # --preflight


def test_doctor_cli_invalid_config_still_runs_host_checks(make_ctx, capsys, monkeypatch) -> None:
    ctx = make_ctx(HTTP_PORT="nope")
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run_cli(
        capsys,
        "doctor",
        "--preflight",
        "--env",
        str(ctx.files.env),
        "--secrets",
        str(ctx.files.secrets),
        "--docker-host",
        "unix:///nonexistent/docker.sock",
    )
    assert code == 1 and "HTTP_PORT" in out and "Traceback" not in out + err
    assert "only the checks that need no config ran" in err
