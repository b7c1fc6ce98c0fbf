"""Alert delivery without Grafana: Prometheus → Alertmanager (the shipped config) → a webhook receiver."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.integration.observability.prom import (
    PROMETHEUS_DIR,
    alertmanager,
    free_port,
    need_tool,
    prometheus,
    wait_for,
)


def test_amtool_accepts_the_shipped_config() -> None:
    result = subprocess.run(
        [need_tool("amtool", "prometheus-alertmanager"), "check-config", str(PROMETHEUS_DIR / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()


def test_a_firing_alert_reaches_the_webhook(tmp_path: Path, webhook: tuple[str, list[dict]]) -> None:
    url, received = webhook
    # The shipped Alertmanager config with the webhook set (what ALERT_WEBHOOK_URL adds) and short waits.
    am_config = yaml.safe_load((PROMETHEUS_DIR / "alertmanager.yml").read_text())
    am_config["receivers"][0]["webhook_configs"] = [{"url": url, "send_resolved": True}]
    am_config["route"]["group_wait"] = "1s"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
    am_port = free_port()

    # The shipped Prometheus config, pointed at that Alertmanager, with one rule that fires at once.
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"]["evaluation_interval"] = "1s"
    config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{am_port}"]}]
    config["rule_files"] = ["firing.yml"]
    config["scrape_configs"] = []
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "firing.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "t",
                        "rules": [
                            {
                                "alert": "DeliveryCheck",
                                "expr": "vector(1)",
                                "labels": {"severity": "critical"},
                                "annotations": {"runbook_url": "docs/runbooks/service-down.md"},
                            }
                        ],
                    }
                ]
            }
        )
    )

    with (
        alertmanager(tmp_path / "alertmanager.yml", tmp_path / "am-data", port=am_port),
        prometheus(tmp_path / "prometheus.yml", tmp_path / "prom-data", extra=("--rules.alert.resend-delay=1s",)),
    ):  # (the first send can precede discovery)
        wait_for("the alert at the webhook", lambda: received)
    payload = received[0]
    assert payload["receiver"] == "operator"
    assert payload["status"] == "firing"
    (alert,) = payload["alerts"]
    assert alert["labels"]["alertname"] == "DeliveryCheck"
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"] == "docs/runbooks/service-down.md"
