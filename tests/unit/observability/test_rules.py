"""Prometheus rules: every alert carries a severity and an existing runbook, and every rule has test cases."""

from __future__ import annotations

import re

import pytest
import yaml

from appliance.config.settings import Settings
from tests.helpers import ROOT

RULES = ROOT / "prometheus" / "rules"
RULE_TESTS = ROOT / "prometheus" / "tests"


def _rules() -> list[dict]:
    return [
        rule
        for path in sorted(RULES.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _alerts() -> list[dict]:
    return [rule for rule in _rules() if "alert" in rule]


def _test_cases() -> list[dict]:
    return [
        case for path in sorted(RULE_TESTS.glob("*_test.yml")) for case in yaml.safe_load(path.read_text())["tests"]
    ]


def kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def test_the_issue_s_alerts_exist() -> None:
    names = {rule["alert"] for rule in _alerts()}
    assert {
        "ServiceDown",
        "ModelNotReady",
        "TtftAboveSlo",
        "HighErrorRatio",
        "GpuMemoryHigh",
        "KvCacheHigh",
        "CertificateExpiringSoon",
        "CertificateRenewalFailed",
        "WatchdogGaveUp",
        "PiiServiceFailing",
        "DiskSpaceLow",
    } <= names


@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: r["alert"])
def test_alert_has_severity_and_an_existing_runbook(rule: dict) -> None:
    assert rule["labels"]["severity"] in {"warning", "critical"}
    url = rule["annotations"]["runbook_url"]
    assert url == f"docs/runbooks/{kebab(rule['alert'])}.md"
    assert (ROOT / url).is_file(), f"{url} is missing"
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: r["alert"])
def test_alert_has_firing_and_not_firing_cases(rule: dict) -> None:
    checks = [
        check
        for case in _test_cases()
        for check in case.get("alert_rule_test", [])
        if check["alertname"] == rule["alert"]
    ]
    assert any(check.get("exp_alerts") for check in checks), f"{rule['alert']}: no case where it fires"
    assert any(not check.get("exp_alerts") for check in checks), f"{rule['alert']}: no case where it stays quiet"


@pytest.mark.parametrize("rule", [r for r in _rules() if "record" in r], ids=lambda r: r["record"])
def test_recording_rule_is_evaluated_in_a_test(rule: dict) -> None:
    exprs = [check["expr"] for case in _test_cases() for check in case.get("promql_expr_test", [])]
    assert any(re.search(rf"(?<![\w:]){re.escape(rule['record'])}(?![\w:])", expr) for expr in exprs)


def test_rule_names_are_unique() -> None:
    names = [rule.get("alert") or rule["record"] for rule in _rules()]
    assert len(names) == len(set(names))


def test_slo_default_matches_the_setting() -> None:
    (rule,) = [r for r in _rules() if r.get("record") == "appliance:ttft_slo_seconds"]
    assert rule["expr"] == f"vector({Settings.model_fields['ttft_slo_seconds'].default})"


def test_every_runbook_is_linked_from_the_guide() -> None:
    guide = (ROOT / "docs" / "guides" / "observability.md").read_text()
    for rule in _alerts():
        assert f"runbooks/{kebab(rule['alert'])}.md" in guide, rule["alert"]
