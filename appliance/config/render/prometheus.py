"""The Prometheus and Alertmanager files the stack mounts, rendered from the shipped ones and the typed config.

The shipped files (``prometheus/``) hold the defaults; what depends on ``.env`` is changed here, purely
(text in, text out): the ``gpu`` scrape job only in GPU mode, the TTFT objective from ``TTFT_SLO_SECONDS``,
the webhook of ``ALERT_WEBHOOK_URL``, and Prometheus's command-line flags (retention, sub-path); with a cluster
network the ``ray-workers`` job (the worker nodes' metrics, relayed by the head) and the head's node name.
"""

from __future__ import annotations

from typing import Any

import yaml

from appliance.config.settings import Accelerator, Settings

GPU_JOB = "gpu"
RAY_JOB = "ray"
WORKERS_JOB = "ray-workers"
RECEIVER = "operator"


def prometheus_config(shipped: str, accelerator: Accelerator, *, cluster: bool = False, node: str = "head") -> str:
    """``prometheus.yml`` for the resolved accelerator (without a GPU there is no dcgm-exporter to scrape) and the
    cluster: ``cluster`` keeps the worker nodes' job, ``node`` labels the head's Ray series (RAY_NODE_NAME)."""
    config: dict[str, Any] = yaml.safe_load(shipped)
    dropped = ({GPU_JOB} if accelerator is not Accelerator.GPU else set()) | (set() if cluster else {WORKERS_JOB})
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] not in dropped]
    for job in config["scrape_configs"]:
        if job["job_name"] == RAY_JOB:
            for group in job["static_configs"]:
                group.setdefault("labels", {})["node"] = node
    text: str = yaml.safe_dump(config, sort_keys=False)
    return text


def slo_rules(settings: Settings) -> str:
    """``rules/slo.yml``: the TTFT objective the TtftAboveSlo alert compares the p95 with."""
    group = {
        "name": "appliance-slo",
        "rules": [{"record": "appliance:ttft_slo_seconds", "expr": f"vector({float(settings.ttft_slo_seconds)})"}],
    }
    text: str = yaml.safe_dump({"groups": [group]}, sort_keys=False)
    return text


def alertmanager_config(shipped: str, settings: Settings) -> str:
    """``alertmanager.yml`` with the operator's webhook when ``ALERT_WEBHOOK_URL`` is set."""
    config: dict[str, Any] = yaml.safe_load(shipped)
    (receiver,) = [r for r in config["receivers"] if r["name"] == RECEIVER]
    receiver.pop("webhook_configs", None)
    if settings.alert_webhook_url:
        receiver["webhook_configs"] = [{"url": settings.alert_webhook_url, "send_resolved": True}]
    text: str = yaml.safe_dump(config, sort_keys=False)
    return text
