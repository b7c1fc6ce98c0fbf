"""Prometheus's way to the worker nodes' Ray metrics (scale-out): service discovery and a scrape relay on the head.

Every Ray node exports its own metrics (the engines running there record theirs through it), at its cluster
address. Prometheus lives on the head's Docker networks and cannot reach the cluster network (only the serve
container has an address there), so the serve container's head process answers Prometheus twice, on
``RELAY_PORT`` of the ``serving`` network:

- ``GET /targets``: Prometheus HTTP service discovery (``http_sd_configs``), the metrics export of every *alive
  worker* node, labelled with its node name (the head's own export is the ``ray`` job's ``serve:8080``);
- a forward-proxy ``GET http://ADDRESS:PORT/metrics`` (Prometheus's ``proxy_url``), relayed to that node only
  when it is one of those targets: the relay reaches nothing else (any other URL, method or node: 403/405).

``worker_targets``/``sd_document``/``relay_url`` are pure; :func:`start_relay` runs the HTTP server in a thread of
the head process, which is a Ray driver: the nodes come from ``ray.nodes()`` (Ray's GCS, no dashboard needed).

The relay is stdlib (``http.server`` + ``urllib``) rather than a proxy package (tinyproxy and the like) because it
is one process's thread with one rule (only the nodes Ray lists, only ``/metrics``): a general proxy would need its
own process supervision in the serve container and a filter file rendered from the same node list.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from appliance.cluster.placement import NODE_LABEL

_LOGGER = logging.getLogger(__name__)

RELAY_PORT = 8090  # on the serve container; Prometheus's `ray-workers` job (prometheus/prometheus.yml)
TARGETS_PATH = "/targets"
METRICS_PATH = "/metrics"
NODES_TTL_S = 5.0  # how old the node list may be when a scrape is checked against it
SCRAPE_TIMEOUT_S = 10.0  # below Prometheus's scrape_timeout (10 s by default): its own error wins


@dataclass(frozen=True)
class NodeTarget:
    node: str  # the node's appliance.io/node label ("?" when it has none)
    address: str
    port: int

    @property
    def target(self) -> str:
        return f"{self.address}:{self.port}"


def worker_targets(nodes: Iterable[Mapping[str, Any]], head_node_id: str) -> list[NodeTarget]:
    """The metrics export of every alive node but the head, sorted by node name (Ray's ``ray.nodes()`` rows)."""
    targets = []
    for node in nodes:
        port = int(node.get("MetricsExportPort") or 0)
        address = str(node.get("NodeManagerAddress") or "")
        if not node.get("Alive") or node.get("NodeID") == head_node_id or port <= 0 or not address:
            continue
        targets.append(NodeTarget(str((node.get("Labels") or {}).get(NODE_LABEL) or "?"), address, port))
    return sorted(targets, key=lambda t: (t.node, t.address, t.port))


def sd_document(targets: Iterable[NodeTarget]) -> list[dict[str, Any]]:
    """Prometheus HTTP SD: one target group per node, labelled ``node``."""
    return [{"targets": [t.target], "labels": {"node": t.node}} for t in targets]


def relay_url(request_target: str, allowed: Iterable[NodeTarget]) -> str | None:
    """The URL to fetch for a proxy request line's target, or None when it is not a node's metrics export: only
    ``http://ADDRESS:PORT/metrics`` (a query string is kept) of an allowed target."""
    parts = urlsplit(request_target)
    if parts.scheme != "http" or parts.path != METRICS_PATH or parts.username or parts.password or parts.fragment:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None or not parts.hostname:
        return None
    if not any(t.address == parts.hostname and t.port == port for t in allowed):
        return None
    return f"http://{parts.hostname}:{port}{METRICS_PATH}" + (f"?{parts.query}" if parts.query else "")


class _Nodes:
    """The worker targets, asked of Ray at most every ``ttl_s`` (a scrape of a node that just joined asks again)."""

    def __init__(self, list_nodes: Callable[[], Iterable[Mapping[str, Any]]], head_node_id: str, ttl_s: float):
        self._list_nodes = list_nodes
        self._head = head_node_id
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._targets: list[NodeTarget] = []
        self._read_at: float | None = None

    def targets(self, *, fresh: bool = False) -> list[NodeTarget]:
        with self._lock:
            now = time.monotonic()
            age = None if self._read_at is None else now - self._read_at
            if age is None or age >= self._ttl_s or (fresh and age >= 1.0):
                try:
                    self._targets = worker_targets(self._list_nodes(), self._head)
                except Exception as err:  # Ray unreachable for a moment: the last list stands
                    _LOGGER.warning("Ray nodes not listed for Prometheus: %s", type(err).__name__)
                self._read_at = now
            return list(self._targets)


def _handler(nodes: _Nodes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "appliance-metrics-relay"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path == TARGETS_PATH:
                self._send(200, json.dumps(sd_document(nodes.targets())).encode(), "application/json")
                return
            url = relay_url(self.path, nodes.targets())
            if url is None and self.path.startswith("http://"):
                url = relay_url(self.path, nodes.targets(fresh=True))  # a node that joined since the last list
            if url is None:
                self._send(403, b"not a Ray node's metrics export\n", "text/plain")
                return
            try:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an env proxy
                with opener.open(url, timeout=SCRAPE_TIMEOUT_S) as upstream:
                    body = upstream.read()
                    content_type = upstream.headers.get("Content-Type", "text/plain")
            except (urllib.error.URLError, OSError) as err:
                self._send(502, f"node metrics unreachable: {type(err).__name__}\n".encode(), "text/plain")
                return
            self._send(200, body, content_type)

        def _refuse(self) -> None:
            self._send(405, b"only GET\n", "text/plain")

        do_POST = do_PUT = do_DELETE = do_PATCH = do_CONNECT = _refuse

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            _LOGGER.debug("metrics relay: " + format, *args)

    return Handler


def start_relay(
    list_nodes: Callable[[], Iterable[Mapping[str, Any]]],
    head_node_id: str,
    *,
    host: str = "0.0.0.0",  # inside the serve container: its networks are serving and cluster only
    port: int = RELAY_PORT,
    ttl_s: float = NODES_TTL_S,
) -> ThreadingHTTPServer:
    """Serve ``/targets`` and the relay from a daemon thread; ``shutdown()`` the returned server to stop it."""
    server = ThreadingHTTPServer((host, port), _handler(_Nodes(list_nodes, head_node_id, ttl_s)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics-relay").start()
    return server
