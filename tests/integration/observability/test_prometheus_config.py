"""promtool over the shipped config and rules, the rule tests, and a real Prometheus loading them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import yaml

from tests.integration.observability.prom import PROMETHEUS_DIR, need_tool, prometheus, wait_for


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need_tool("promtool", "prometheus"), *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_promtool_check_config() -> None:
    result = _promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules() -> None:
    files = sorted(str(p) for p in (PROMETHEUS_DIR / "rules").glob("*.yml"))
    result = _promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_promtool_rule_tests_pass() -> None:
    files = sorted(str(p) for p in (PROMETHEUS_DIR / "tests").glob("*_test.yml"))
    assert files
    result = _promtool("test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_catches_a_broken_rule_test(tmp_path: Path) -> None:
    """The rule tests can fail: an expectation off by one character is reported."""
    shutil.copytree(PROMETHEUS_DIR / "rules", tmp_path / "rules")
    (tmp_path / "tests").mkdir()
    text = (PROMETHEUS_DIR / "tests" / "alerts_test.yml").read_text()
    broken = text.replace("runbook_url: docs/runbooks/service-down.md", "runbook_url: docs/runbooks/service-dawn.md")
    assert broken != text
    (tmp_path / "tests" / "alerts_test.yml").write_text(broken)
    result = _promtool("test", "rules", str(tmp_path / "tests" / "alerts_test.yml"))
    assert result.returncode != 0
    assert "service-dawn" in result.stdout + result.stderr


def test_real_prometheus_loads_config_and_every_rule(tmp_path: Path) -> None:
    shutil.copytree(PROMETHEUS_DIR, tmp_path / "prometheus")
    config = tmp_path / "prometheus" / "prometheus.yml"
    expected = sum(
        len(group["rules"])
        for path in (PROMETHEUS_DIR / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
    )
    with prometheus(config, tmp_path / "data") as base:
        groups = wait_for(
            "rules loaded", lambda: httpx.get(f"{base}/api/v1/rules", timeout=10).json()["data"]["groups"]
        )
        loaded = [rule for group in groups for rule in group["rules"]]
        assert len(loaded) == expected
        assert all(rule["health"] != "err" for rule in loaded), [r for r in loaded if r["health"] == "err"]
        # every job but nginx: its exporter is found by name in Docker's DNS, which does not answer here
        want = {"ray", "supervisor", "node", "gpu", "prometheus", "alertmanager"}

        def jobs() -> set[str]:
            targets = httpx.get(f"{base}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
            return {target["labels"]["job"] for target in targets}

        wait_for("every scrape job", lambda: want <= jobs())
        # a switched-off nginx-exporter (local mode) is no target at all: no up == 0, no ServiceDown
        assert "nginx" not in jobs()
        up = httpx.get(f"{base}/api/v1/query", params={"query": 'up{job="nginx"}'}, timeout=10).json()["data"]
        assert up["result"] == []
        config_text = httpx.get(f"{base}/api/v1/status/config", timeout=10).json()["data"]["yaml"]
        (nginx_job,) = [j for j in yaml.safe_load(config_text)["scrape_configs"] if j["job_name"] == "nginx"]
        assert nginx_job["dns_sd_configs"][0]["names"] == ["nginx-exporter"]
        flags = httpx.get(f"{base}/api/v1/status/flags", timeout=10).json()["data"]
        assert flags["storage.tsdb.retention.time"] == "1d"


def test_rendered_files_pass_promtool_and_amtool(tmp_path: Path) -> None:
    from appliance.config.render.prometheus import alertmanager_config, prometheus_config, slo_rules
    from appliance.config.settings import Accelerator, Settings

    settings = Settings(TTFT_SLO_SECONDS=0.5, ALERT_WEBHOOK_URL="https://hooks.example.com/a")
    shutil.copytree(PROMETHEUS_DIR / "rules", tmp_path / "rules")
    (tmp_path / "rules" / "slo.yml").write_text(slo_rules(settings))
    for accelerator in (Accelerator.CPU, Accelerator.GPU):
        (tmp_path / "prometheus.yml").write_text(
            prometheus_config((PROMETHEUS_DIR / "prometheus.yml").read_text(), accelerator)
        )
        result = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
        assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "alertmanager.yml").write_text(
        alertmanager_config((PROMETHEUS_DIR / "alertmanager.yml").read_text(), settings)
    )
    checked = subprocess.run(
        [need_tool("amtool", "prometheus-alertmanager"), "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
