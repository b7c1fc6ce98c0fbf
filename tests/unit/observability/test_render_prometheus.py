"""Rendering the Prometheus / Alertmanager files from the settings (pure)."""

from __future__ import annotations

import yaml

from appliance.config.render.prometheus import alertmanager_config, prometheus_config, slo_rules
from appliance.config.settings import Accelerator, Settings
from tests.helpers import ROOT

SHIPPED = (ROOT / "prometheus" / "prometheus.yml").read_text()
ALERTMANAGER = (ROOT / "prometheus" / "alertmanager.yml").read_text()


def _jobs(text: str) -> list[str]:
    return [job["job_name"] for job in yaml.safe_load(text)["scrape_configs"]]


def test_gpu_job_only_in_gpu_mode() -> None:
    assert "gpu" in _jobs(prometheus_config(SHIPPED, Accelerator.GPU))
    cpu = _jobs(prometheus_config(SHIPPED, Accelerator.CPU))
    assert "gpu" not in cpu and {"ray", "supervisor", "nginx", "node"} <= set(cpu)
    assert "ray-workers" not in _jobs(prometheus_config(SHIPPED, Accelerator.GPU))  # a single node
    assert yaml.safe_load(prometheus_config(SHIPPED, Accelerator.GPU, cluster=True)) == yaml.safe_load(SHIPPED)


def test_the_worker_nodes_job_and_the_heads_node_label_only_with_a_cluster_network() -> None:
    config = yaml.safe_load(prometheus_config(SHIPPED, Accelerator.CPU, cluster=True, node="gpu-a"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["ray"]["static_configs"] == [{"targets": ["serve:8080"], "labels": {"node": "gpu-a"}}]
    workers = jobs["ray-workers"]
    assert workers["http_sd_configs"][0]["url"] == workers["proxy_url"] + "/targets"  # the relay lists and relays
    assert workers["proxy_url"] == "http://serve:8090"


def test_slo_from_the_setting_and_the_shipped_default_agree() -> None:
    assert yaml.safe_load(slo_rules(Settings())) == yaml.safe_load((ROOT / "prometheus/rules/slo.yml").read_text())
    rendered = yaml.safe_load(slo_rules(Settings(TTFT_SLO_SECONDS=0.75)))
    assert rendered["groups"][0]["rules"][0]["expr"] == "vector(0.75)"


def test_webhook_only_when_set() -> None:
    none = yaml.safe_load(alertmanager_config(ALERTMANAGER, Settings()))
    assert "webhook_configs" not in none["receivers"][0]
    url = "https://hooks.example.com/alerts"
    hooked = yaml.safe_load(alertmanager_config(ALERTMANAGER, Settings(ALERT_WEBHOOK_URL=url)))
    assert hooked["receivers"][0]["webhook_configs"] == [{"url": url, "send_resolved": True}]
    assert hooked["route"] == yaml.safe_load(ALERTMANAGER)["route"]
