"""The worker nodes' metrics for Prometheus: which nodes are targets, the SD document, which proxy requests are
relayed (pure), and the relay itself over real sockets on 127.0.0.1: Prometheus's discovery and a scrape through
it as Prometheus sends one (a forward-proxy request), against a real HTTP server standing in for a node's export."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from appliance.cluster.metrics_relay import NodeTarget, relay_url, sd_document, start_relay, worker_targets
from appliance.cluster.placement import NODE_LABEL

HEAD = "h" * 56


def _node(node_id: str, name: str | None, address: str, port: int, *, alive: bool = True) -> dict:
    return {
        "NodeID": node_id,
        "Alive": alive,
        "NodeManagerAddress": address,
        "MetricsExportPort": port,
        "Labels": {NODE_LABEL: name} if name else {},
    }


def test_targets_are_the_alive_workers_not_the_head_nor_the_dead() -> None:
    nodes = [
        _node(HEAD, "head", "10.50.0.10", 8080),
        _node("b", "gpu-b", "10.50.0.20", 8080),
        _node("c", "gpu-c", "10.50.0.30", 8080, alive=False),
        _node("d", None, "10.50.0.40", 41234),
        _node("e", "no-export", "10.50.0.50", 0),
    ]
    assert worker_targets(nodes, HEAD) == [
        NodeTarget("?", "10.50.0.40", 41234),
        NodeTarget("gpu-b", "10.50.0.20", 8080),
    ]
    assert sd_document(worker_targets(nodes, HEAD)) == [
        {"targets": ["10.50.0.40:41234"], "labels": {"node": "?"}},
        {"targets": ["10.50.0.20:8080"], "labels": {"node": "gpu-b"}},
    ]


@pytest.mark.parametrize(
    ("target", "relayed"),
    [
        ("http://10.50.0.20:8080/metrics", "http://10.50.0.20:8080/metrics"),
        ("http://10.50.0.20:8080/metrics?x=1", "http://10.50.0.20:8080/metrics?x=1"),
        ("http://10.50.0.20:8081/metrics", None),  # another port of the node
        ("http://10.50.0.21:8080/metrics", None),  # not a node
        ("http://10.50.0.20:8080/api/jobs", None),  # another path
        ("https://10.50.0.20:8080/metrics", None),
        ("http://user:pw@10.50.0.20:8080/metrics", None),
        ("http://10.50.0.20/metrics", None),  # no port
        ("http://10.50.0.20:99999/metrics", None),
        ("/metrics", None),  # not a proxy request
    ],
)
def test_only_a_listed_nodes_metrics_export_is_relayed(target: str, relayed: str | None) -> None:
    assert relay_url(target, [NodeTarget("gpu-b", "10.50.0.20", 8080)]) == relayed


@pytest.fixture
def node_export() -> Iterator[int]:
    """A real HTTP server on 127.0.0.1 answering /metrics as a Ray node's export does."""

    class Export(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"# TYPE ray_node_cpu_utilization gauge\nray_node_cpu_utilization 12.5\n"
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Export)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _via_proxy(relay_port: int, url: str, method: str = "GET") -> tuple[int, str, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{relay_port}"}))
    try:
        with opener.open(urllib.request.Request(url, method=method), timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def test_prometheus_discovers_the_workers_and_scrapes_them_through_the_relay(node_export: int) -> None:
    nodes = [_node(HEAD, "head", "127.0.0.1", 1), _node("w", "worker1", "127.0.0.1", node_export)]
    asked = []

    def list_nodes() -> list[dict]:
        asked.append(1)
        return nodes

    relay = start_relay(list_nodes, HEAD, host="127.0.0.1", port=0, ttl_s=60)
    port = relay.server_address[1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/targets", timeout=10) as response:
            assert response.headers["Content-Type"] == "application/json"
            assert json.loads(response.read()) == [
                {"targets": [f"127.0.0.1:{node_export}"], "labels": {"node": "worker1"}}
            ]
        status, content_type, body = _via_proxy(port, f"http://127.0.0.1:{node_export}/metrics")
        assert (status, content_type) == (200, "text/plain; version=0.0.4")
        assert "ray_node_cpu_utilization 12.5" in body
        # the head's own export (scraped as serve:8080) and anything else the relay could reach: refused
        assert _via_proxy(port, "http://127.0.0.1:1/metrics")[0] == 403
        assert _via_proxy(port, f"http://127.0.0.1:{node_export}/other")[0] == 403
        assert _via_proxy(port, f"http://127.0.0.1:{node_export}/metrics", method="POST")[0] == 405
        # a node that joined after the last list is found at its first scrape (the list is read again)
        nodes.append(_node("x", "worker2", "127.0.0.2", node_export))
        time.sleep(1.1)  # (read again at most once a second)
        before = len(asked)
        assert _via_proxy(port, f"http://127.0.0.2:{node_export}/metrics")[0] in (200, 502)  # listed now
        assert len(asked) == before + 1
    finally:
        relay.shutdown()
        relay.server_close()


def test_a_node_that_does_not_answer_is_a_502_not_a_hang(node_export: int) -> None:
    gone = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    dead_port = gone.server_address[1]
    gone.server_close()  # nothing listens there now
    relay = start_relay(lambda: [_node("w", "w", "127.0.0.1", dead_port)], HEAD, host="127.0.0.1", port=0)
    try:
        status, _, body = _via_proxy(relay.server_address[1], f"http://127.0.0.1:{dead_port}/metrics")
        assert status == 502 and "unreachable" in body
    finally:
        relay.shutdown()
        relay.server_close()
