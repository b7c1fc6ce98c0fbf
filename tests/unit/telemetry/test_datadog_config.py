"""The Datadog agent's OpenMetrics checks point at endpoints the agent's container can reach.

The agent sits on the compose `backend` network only (whatever reaches serve can submit a Ray job), so an
endpoint on a service it shares no network with would fail at every collection, silently for the operator.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[3]
AGENT = "datadog-agent"


def _endpoints() -> list[str]:
    conf = yaml.safe_load((ROOT / "datadog/conf.d/openmetrics.d/conf.yaml").read_text())
    return [instance["openmetrics_endpoint"] for instance in conf["instances"]]


def test_every_openmetrics_endpoint_is_on_a_network_the_agent_shares() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    agent_networks = set(services[AGENT]["networks"])
    endpoints = _endpoints()
    assert endpoints
    for endpoint in endpoints:
        host = urlsplit(endpoint).hostname
        assert host in services, f"{endpoint}: {host} is not a compose service"
        shared = agent_networks & set(services[host].get("networks", ["default"]))
        assert shared, f"{endpoint}: {host} is on {services[host].get('networks')}, the agent on {agent_networks}"


def test_ray_metrics_come_through_prometheus_federation_with_the_route_prefix() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "--web.route-prefix=/prometheus/" in compose
    ray = [e for e in _endpoints() if "federate" in e]
    assert len(ray) == 1 and urlsplit(ray[0]).path == "/prometheus/federate", ray
