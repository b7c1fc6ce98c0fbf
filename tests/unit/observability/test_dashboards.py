"""Grafana: the dashboards are valid, generated, and provisioned as the issue asks (Grafana cannot run here)."""

from __future__ import annotations

import configparser
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PANEL_TYPES = {"timeseries", "stat", "table", "bargauge", "gauge", "text"}


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_four_dashboards_exist() -> None:
    titles = {_load(p)["title"] for p in DASHBOARDS}
    assert titles == {"LLM serving", "Gateway", "PII", "Appliance"}


def test_committed_json_is_what_the_generator_writes(tmp_path: Path) -> None:
    sys.path.insert(0, str(GRAFANA))
    try:
        import generate  # grafana/generate.py
    finally:
        sys.path.remove(str(GRAFANA))
    for path in DASHBOARDS:
        assert path.read_text() == generate.render(path.stem), f"{path.name}: run `python grafana/generate.py`"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_valid_grafana_json(path: Path) -> None:
    board = _load(path)
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert board["uid"] == path.stem and re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"])
    assert "id" not in board or board["id"] is None, "a provisioned dashboard must not carry a database id"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus" and target["expr"].strip()
    for var in board["templating"]["list"]:
        assert var["datasource"]["uid"] == "prometheus"


def test_panels_do_not_overlap() -> None:
    for path in DASHBOARDS:
        cells: set[tuple[int, int]] = set()
        for panel in _load(path)["panels"]:
            g = panel["gridPos"]
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{path.name}: {panel['title']} overlaps"
            cells |= mine


def test_the_issue_s_panels_are_there() -> None:
    text = {p.stem: p.read_text() for p in DASHBOARDS}
    for needle in (
        "time_to_first_token",
        "inter_token_latency",
        "request_latency_seconds:p99",
        "completion_tokens:rate1m",
        "num_requests_running",
        "num_requests_waiting",
        "kv_cache_usage",
    ):
        assert needle in text["llm-serving"], needle
    for needle in ("by (status)", "throttled_ratio", "by (key)", "appliance_certificate_days_left"):
        assert needle in text["gateway"], needle
    for needle in ("pii_scan_latency_seconds", "pii_entities_detected_total", "pii_failures_total"):
        assert needle in text["pii"], needle
    for needle in (
        "appliance_supervisor_service_healthy",
        "appliance_supervisor_restarts_total",
        "appliance_supervisor_giveups_total",
        "node_filesystem_avail_bytes",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_GPU_TEMP",
    ):
        assert needle in text["appliance"], needle


def test_provisioning_points_at_the_dashboards_and_the_datasource() -> None:
    (source,) = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    assert source["url"].endswith("/prometheus"), "Prometheus runs with --web.route-prefix=/prometheus/"
    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/appliance.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_grafana_is_under_a_sub_path_with_the_secret_password_and_no_anonymous_access() -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(GRAFANA / "grafana.ini")
    assert ini["server"]["root_url"].endswith("/grafana/")
    assert ini["server"].getboolean("serve_from_sub_path")
    assert ini["auth.anonymous"].getboolean("enabled") is False
    assert ini["security"]["admin_password"].startswith("$__file{"), "the password comes from .secrets, not here"
    assert ini["users"].getboolean("allow_sign_up") is False


def test_the_disk_panel_shows_the_ratio_the_disk_alert_fires_on() -> None:
    import yaml

    sys.path.insert(0, str(GRAFANA))
    try:
        import generate  # grafana/generate.py
    finally:
        sys.path.remove(str(GRAFANA))
    rules = yaml.safe_load((GRAFANA.parent / "prometheus/rules/alerts.yml").read_text())
    expr = next(r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("alert") == "DiskSpaceLow")
    assert " ".join(expr.split()) == " ".join(generate.DISK_FREE_RATIO.split()) + " < 0.10"
    exprs = {
        t["expr"] for panel in _load(GRAFANA / "dashboards/appliance.json")["panels"] for t in panel.get("targets", [])
    }
    assert generate.DISK_FREE_RATIO in exprs
