"""The Prometheus and Alertmanager files the stack mounts, rendered from the shipped ones and the typed config.

The shipped files (``prometheus/``) hold the defaults; what depends on ``.env`` is changed here, purely
(text in, text out): the ``gpu`` scrape job only in GPU mode, the TTFT objective from ``TTFT_SLO_SECONDS``,
the webhook of ``ALERT_WEBHOOK_URL``, and Prometheus's command-line flags (retention, sub-path).
"""

from __future__ import annotations

from typing import Any

import yaml

from appliance.config.settings import Accelerator, Settings

GPU_JOB = "gpu"
RECEIVER = "operator"


def prometheus_config(shipped: str, accelerator: Accelerator) -> str:
    """``prometheus.yml`` for the resolved accelerator: without a GPU there is no dcgm-exporter to scrape."""
    config: dict[str, Any] = yaml.safe_load(shipped)
    if accelerator is not Accelerator.GPU:
        config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] != GPU_JOB]
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
