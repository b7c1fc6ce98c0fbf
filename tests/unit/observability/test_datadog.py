"""Datadog agent configuration (the agent cannot run here): valid YAML, no secret in the repo, DogStatsD where
the supervisor sends, OpenMetrics checks on the endpoints Prometheus scrapes, JSON log collection."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import yaml

from appliance.telemetry import dogstatsd
from tests.helpers import ROOT

DATADOG = ROOT / "datadog"
# Names seen on a live Ray head export and the supervisor's registry (see docs/guides/observability.md).
EXPORTED = {
    "ray_appliance_requests_total",
    "ray_appliance_time_to_first_token_seconds_bucket",
    "ray_vllm_kv_cache_usage_perc",
    "ray_vllm_num_requests_running",
    "ray_pii_failures_total",
    "ray_serve_deployment_status",
    "ray_serve_num_http_requests_total",
    "appliance_supervisor_restarts_total",
    "appliance_certificate_days_left",
}


def _yaml(relative: str) -> dict:
    return yaml.safe_load((DATADOG / relative).read_text())


def test_no_api_key_or_secret_in_the_repo() -> None:
    for path in DATADOG.rglob("*.yaml"):
        data = yaml.safe_load(path.read_text()) or {}
        assert "api_key" not in data, f"{path}: the key comes from DD_API_KEY (.secrets), never from a file"
        assert not re.search(r"\b[0-9a-f]{32}\b", path.read_text()), f"{path}: looks like a Datadog key"


def test_agent_takes_key_site_and_tags_from_the_environment() -> None:
    text = (DATADOG / "datadog.yaml").read_text()
    for var in ("DD_API_KEY", "DD_SITE", "DD_ENV", "DD_TAGS", "DD_VERSION", "DD_SERVICE"):
        assert var in text, f"datadog.yaml should document {var}"
    assert _yaml("datadog.yaml")["site"] == "datadoghq.com"  # the setting's default; DD_SITE overrides


def test_dogstatsd_listens_where_the_supervisor_sends() -> None:
    config = _yaml("datadog.yaml")
    assert config["use_dogstatsd"] is True
    assert config["dogstatsd_non_local_traffic"] is True, "the supervisor is another container"
    daemon = (ROOT / "appliance" / "supervisor" / "daemon.py").read_text()
    assert f'"DD_DOGSTATSD_PORT", "{config["dogstatsd_port"]}"' in daemon
    assert dogstatsd.PREFIX.startswith("appliance.")


def test_logs_are_collected() -> None:
    config = _yaml("datadog.yaml")
    assert config["logs_enabled"] is True and config["logs_config"]["container_collect_all"] is True
    for entry in _yaml("conf.d/appliance.d/conf.yaml")["logs"]:
        assert entry["type"] == "file" and entry["path"].startswith("/var/log/appliance/")
        assert entry["service"] == "appliance" and entry["source"]


def test_openmetrics_checks_cover_the_prometheus_targets() -> None:
    instances = _yaml("conf.d/openmetrics.d/conf.yaml")["instances"]
    endpoints = {i["openmetrics_endpoint"] for i in instances}
    prom = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0]
        for job in prom["scrape_configs"]
        if "static_configs" in job
    }
    # Ray's export through Prometheus's federation of the `ray` job (the agent has no network path to serve).
    assert targets["ray"] == "serve:8080"
    assert endpoints == {
        "http://prometheus:9090/prometheus/federate?match[]=%7Bjob%3D%22ray%22%7D",
        f"http://{targets['supervisor']}/metrics",
    }
    covered = set()
    for instance in instances:
        assert instance["namespace"] == "appliance" and instance["service"] == "appliance"
        assert instance["metrics"]
        for pattern in instance["metrics"]:
            matched = {name for name in EXPORTED if re.fullmatch(pattern, name)}
            assert matched, f"{pattern} matches none of the exported names"
            covered |= matched
    assert covered == EXPORTED


def test_every_openmetrics_endpoint_is_on_a_network_the_agent_shares() -> None:
    """The agent is on `backend` only (whatever reaches serve can submit a Ray job): an endpoint on a service it
    shares no network with would fail at every collection, silently for the operator."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    agent_networks = set(services["datadog-agent"]["networks"])
    for instance in _yaml("conf.d/openmetrics.d/conf.yaml")["instances"]:
        host = urlsplit(instance["openmetrics_endpoint"]).hostname
        assert host in services, f"{instance['openmetrics_endpoint']}: {host} is not a compose service"
        assert agent_networks & set(services[host]["networks"]), f"{host}: {services[host]['networks']}"
