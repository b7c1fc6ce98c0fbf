"""A real Prometheus (Debian's) with the shipped scrape config and rules scrapes the real serve app, the
supervisor's metrics endpoint and a node-exporter; every PromQL expression of every dashboard panel and every
rule must parse, and after some traffic the core serving panels return data."""

from __future__ import annotations

import json
import math
import shutil
import sys
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.e2e.conftest import MODELS, Stack
from tests.helpers import ROOT
from tests.integration.observability.prom import (
    PROMETHEUS_DIR,
    free_port,
    need_tool,
    prometheus,
    query,
    running,
    wait_for,
)

DATA_TIMEOUT = 240
# Grafana's variables, as the dashboards would send them with "All" selected.
GRAFANA_VARS = {"$model": ".*", "$node": ".*", "$__rate_interval": "1m", "$__range": "1h"}
# The serving panels that must show data once requests went through: (dashboard uid, panel title, whether the
# value must be above zero — rates and latencies — or only a number — gauges that may rightly read 0).
CORE_PANELS = [
    ("llm-serving", "Requests per second", True),
    ("llm-serving", "Request latency p50 / p95 / p99", True),
    ("llm-serving", "Time to first token p50 / p95 / p99", True),
    ("llm-serving", "Inter-token latency p50 / p95 / p99", True),
    ("llm-serving", "Tokens per second", True),
    ("llm-serving", "Engine tokens per second", True),
    ("llm-serving", "Running and waiting sequences", False),
    ("llm-serving", "KV-cache usage", False),
    ("llm-serving", "Model deployment status", True),
    ("gateway", "Responses by status", True),
    ("gateway", "Top keys by tokens", True),
    ("gateway", "Certificate days left", True),
    ("appliance", "Service health (supervisor)", True),
    ("appliance", "Disk free", True),
]

SUPERVISOR = """
import sys, time
from appliance.telemetry.supervisor_metrics import SupervisorMetrics
m = SupervisorMetrics()
for service in ("serve", "nginx"):
    m.service_healthy.labels(service).set(1)
    m.restarts.labels(service)
    m.giveups.labels(service)
m.cert_days_left.set(89.5)
m.last_renewal_ok.set(1)
m.serve(int(sys.argv[1]), addr="127.0.0.1")
while True:
    time.sleep(60)
"""


def _dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))}


def _grafana(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def _every_expression() -> list[tuple[str, str]]:
    exprs = []
    for uid, board in _dashboards().items():
        for panel in board["panels"]:
            exprs += [(f"{uid} / {panel['title']}", _grafana(t["expr"])) for t in panel["targets"]]
        for var in board["templating"]["list"]:  # label_values(METRIC, LABEL): the selector is PromQL
            exprs.append((f"{uid} / ${var['name']}", var["definition"].removeprefix("label_values(").split(",")[0]))
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            exprs += [(f"{path.name} / {r.get('alert') or r['record']}", r["expr"]) for r in group["rules"]]
    return exprs


@pytest.fixture(scope="module")
def observed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need_tool("prometheus", "prometheus")
    node_exporter = need_tool("prometheus-node-exporter", "prometheus-node-exporter")
    work = tmp_path_factory.mktemp("observability")
    sup_port, node_port, prom_port = free_port(), free_port(), free_port()

    # The shipped config, with the compose service names replaced by where the test runs them. Jobs for what
    # cannot run here (nginx-exporter, dcgm-exporter, alertmanager) are left out.
    shutil.copytree(PROMETHEUS_DIR / "rules", work / "rules")
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="2s", evaluation_interval="2s")
    config.pop("alerting")
    where = {
        "ray": urlsplit(stack.metrics_url).netloc,
        "supervisor": f"127.0.0.1:{sup_port}",
        "node": f"127.0.0.1:{node_port}",
        "prometheus": f"127.0.0.1:{prom_port}",
    }
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] in where]
    for job in config["scrape_configs"]:
        job["static_configs"][0]["targets"] = [where[job["job_name"]]]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))

    with (
        running(
            [sys.executable, "-c", SUPERVISOR, str(sup_port)],
            f"http://127.0.0.1:{sup_port}/metrics",
            work / "supervisor.log",
        ),
        running(
            [
                node_exporter,
                f"--web.listen-address=127.0.0.1:{node_port}",
                "--collector.disable-defaults",
                "--collector.filesystem",
                "--collector.cpu",
                "--collector.meminfo",
            ],
            f"http://127.0.0.1:{node_port}/metrics",
            work / "node-exporter.log",
        ),
        prometheus(work / "prometheus.yml", work / "data", port=prom_port) as base,
    ):
        yield base


def test_every_target_that_runs_is_up(observed: str) -> None:
    def all_up() -> list[dict] | None:
        targets = httpx.get(f"{observed}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return targets if len(targets) == 4 and all(t["health"] == "up" for t in targets) else None

    targets = wait_for("every target up", all_up, timeout=60)
    assert {t["labels"]["job"] for t in targets} == {"ray", "supervisor", "node", "prometheus"}
    assert {r["metric"]["job"] for r in query(observed, "up == 1")["data"]["result"]} == {
        "ray",
        "supervisor",
        "node",
        "prometheus",
    }


def test_every_dashboard_and_rule_expression_parses(observed: str) -> None:
    exprs = _every_expression()
    assert len(exprs) > 60
    bad = [
        (where, expr, answer.get("error"))
        for where, expr in exprs
        if (answer := query(observed, expr))["status"] != "success"
    ]
    assert not bad, bad
    # Prometheus does reject a broken expression through the same path.
    assert query(observed, "sum by (model (up)")["status"] == "error"


def test_core_panels_return_data_after_traffic(stack: Stack, observed: str) -> None:
    boards = _dashboards()
    panels = {(uid, p["title"]): p for uid, board in boards.items() for p in board["panels"]}
    stop = threading.Event()

    def traffic() -> None:  # streamed and plain requests on both models until the panels fill
        client = stack.client(stack.keys["admin"])
        while not stop.is_set():
            for model in MODELS:
                list(
                    client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=16, stream=True
                    )
                )
                client.completions.create(model=model, prompt="Once upon", max_tokens=8)

    def empty_panels() -> list[tuple[str, str]]:
        missing = []
        for uid, title, positive in CORE_PANELS:
            target = panels[(uid, title)]["targets"][0]
            result = query(observed, _grafana(target["expr"]))["data"]["result"]
            values = [float(r["value"][1]) for r in result]
            if not any(math.isfinite(v) and (v > 0 or not positive) for v in values):
                missing.append((uid, title))
        return missing

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        wait_for("data in the core panels", lambda: not empty_panels(), timeout=DATA_TIMEOUT)
    except AssertionError as err:
        raise AssertionError(f"panels without data: {empty_panels()}") from err
    finally:
        stop.set()
        worker.join(timeout=120)

    per_model = query(observed, "model:appliance_completion_tokens:rate1m")["data"]["result"]
    assert {r["metric"]["model"] for r in per_model} >= set(MODELS)
    assert query(observed, "min(appliance_certificate_days_left)")["data"]["result"][0]["value"][1] == "89.5"
    # No rule fails to evaluate against the real series.
    rules = httpx.get(f"{observed}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert all(r["health"] != "err" for g in rules for r in g["rules"]), rules
