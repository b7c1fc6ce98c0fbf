"""Edge hardening on real nginx: forwarded address and request ids, redirects, cipher order, closed routes."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port
from tests.integration.edge.conftest import DASHBOARD_PASSWORD, Edge, make_edge, raw_exchange, stop

pytestmark = pytest.mark.security

SERVER_CIPHERS_TLS12 = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
]
PROXIED = ["/v1/echo", "/health/live", "/admin/keys", "/grafana/d/home"]
UNSAFE_IDS = ["a" * 129, "has space", "semi;colon", 'quote"d', "back\\slash", "ünï"]


def _source(block: int, case: str, cases: list[str]) -> str:
    """A loopback address of its own for each case (the edge limits 6/min per address)."""
    return f"127.0.{block}.{cases.index(case) + 1}"


# --- forwarded address and request ids -------------------------------------------------------------------


@pytest.mark.parametrize("path", PROXIED)
def test_a_spoofed_client_address_is_not_what_the_backend_sees(edge: Edge, path: str) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9", "Forwarded": "for=203.0.113.9"}
    source = _source(7, path, PROXIED)
    with edge.client(source) as client:
        seen = client.get(path, headers=spoofed).json()["headers"]
    assert seen["X-Forwarded-For"] == source and seen["X-Real-IP"] == source
    assert "Forwarded" not in seen


def _log_line(edge: Edge, request_id: str) -> dict:
    """The access-log line of ``request_id`` (nginx writes it just after the response: wait a little)."""
    deadline = time.monotonic() + 5
    while True:
        text = Path(edge.layout.access_log).read_text()
        lines = [json.loads(line) for line in text.splitlines() if request_id in line]
        if lines or time.monotonic() > deadline:
            assert len(lines) == 1, lines
            return lines[0]
        time.sleep(0.05)


@pytest.mark.parametrize("path", PROXIED)
def test_the_request_id_is_nginxs_and_the_clients_travels_separately(edge: Edge, path: str) -> None:
    with edge.client(_source(8, path, PROXIED)) as client:
        response = client.get(path, headers={"X-Request-ID": "client-id-42", "X-Client-Request-ID": "forged"})
    seen = response.json()["headers"]
    ours = response.headers.get_list("x-request-id")
    # The backend answered with an X-Request-ID of its own: clients still read nginx's id, once.
    assert len(ours) == 1 and len(ours[0]) == 32 and ours[0] != "client-id-42"
    assert seen["X-Request-ID"] == ours[0] and seen["X-Client-Request-ID"] == "client-id-42"
    assert "x-client-request-id" not in response.headers
    logged = _log_line(edge, ours[0])
    assert logged["request_id"] == ours[0] and logged["client_request_id"] == "client-id-42"


@pytest.mark.parametrize("client_id", UNSAFE_IDS)
def test_an_unsafe_client_request_id_is_not_passed_on(edge: Edge, client_id: str) -> None:
    with edge.client(_source(9, client_id, UNSAFE_IDS)) as client:
        response = client.get("/v1/echo", headers={"X-Request-ID": client_id.encode(), "X-Client-Request-ID": "forged"})
    seen = response.json()["headers"]
    assert "X-Client-Request-ID" not in seen and seen["X-Request-ID"] == response.headers["x-request-id"]
    assert _log_line(edge, seen["X-Request-ID"])["client_request_id"] == ""


def test_answers_nginx_makes_itself_carry_its_request_id_once(edge: Edge) -> None:
    with edge.client("127.0.10.1") as client:
        for path, status in (("/nope", 404), ("/prometheus/graph", 401), ("/v1/fail", 500)):
            response = client.get(path, headers={"X-Request-ID": "client-id-43"})
            assert response.status_code == status
            ids = response.headers.get_list("x-request-id")
            assert len(ids) == 1 and len(ids[0]) == 32, (path, ids)


# --- TLS 1.2 cipher order --------------------------------------------------------------------------------


def test_tls12_clients_get_the_servers_first_cipher_whatever_their_order(edge: Edge) -> None:
    chosen = []
    for offer in (SERVER_CIPHERS_TLS12, SERVER_CIPHERS_TLS12[::-1]):
        ctx = ssl.create_default_context(cafile=str(edge.cert_file))
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(":".join(offer))
        with socket.create_connection(("127.0.0.1", edge.https), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                chosen.append(tls.cipher()[0])
    # The test certificate is ECDSA: the server's first ECDSA cipher, even when the client lists it last.
    assert chosen == ["ECDHE-ECDSA-AES128-GCM-SHA256"] * 2


# --- routes: nothing else is proxied ---------------------------------------------------------------------

CLOSED = [
    "/",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/v2/models",
    "/V1/models",
    "/api/jobs",
    "/-/healthy",
    "/healthz",
    "/grafanax/",
    "/adminx/",
    "/v1x/models",
    "/.well-known/acme-challenge/tok",
    "/nginx_status",
    "/v1/../metrics",
    "/health/../-/reload",
    "//metrics",
    "/%76%32/models",
    "/ray",
]


@pytest.mark.parametrize("path", CLOSED)
def test_paths_outside_the_published_routes_are_404_json_from_nginx(edge: Edge, path: str) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    status, body = raw_exchange(edge.https, request, source=_source(11, path, CLOSED), cafile=edge.cert_file)
    if path == "/ray":  # the one bare prefix with a location of its own: a relative redirect, nothing proxied
        assert status == 301 and b"path" not in body
        return
    answer = json.loads(body)
    assert status == 404 and answer["error"]["type"] == "not_found_error" and "path" not in answer


# --- a published port that is not nginx's own (compose: 443 in the container, HTTPS_PORT on the host) ---


class Forwarder:
    """A host port that forwards TCP to nginx's listen port, as Docker publishes a container port."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.server = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()


DOMAIN = "llm.appliance.test"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, backend_port: int) -> Iterator[tuple[Edge, int]]:
    """nginx for DOMAIN, its HTTPS port published on another port: (edge, published port)."""
    port = free_port()
    running = make_edge(tmp_path_factory.mktemp("published"), backend_port, published_https=port, DOMAIN=DOMAIN)
    forwarder = Forwarder(port, running.https)
    yield running, port
    forwarder.close()
    stop(running.proc)


@pytest.mark.parametrize("host", ["evil.example", DOMAIN, "127.0.0.1"])
def test_port_80_redirects_to_the_configured_name_not_the_clients_host(published: tuple[Edge, int], host: str) -> None:
    edge, port = published
    response = httpx.get(f"http://127.0.0.1:{edge.http}/v1/models?x=1", headers={"Host": host})
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{DOMAIN}:{port}/v1/models?x=1"


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/grafana", "/grafana/"),
        ("/prometheus", "/prometheus/"),
        ("/health", "/health/"),
        ("/grafana?orgId=1", "/grafana/?orgId=1"),
    ],
)
def test_trailing_slash_redirects_keep_the_published_port(published: tuple[Edge, int], path: str, target: str) -> None:
    edge, port = published
    verify = ssl.create_default_context(cafile=str(edge.cert_file))
    with httpx.Client(
        base_url=f"https://localhost:{port}", verify=verify, timeout=30, auth=("admin", DASHBOARD_PASSWORD)
    ) as client:
        response = client.get(path)
        assert response.status_code == 301
        assert response.headers["location"] == target  # relative: the browser keeps the port it used
        followed = client.get(path, follow_redirects=True)
    assert followed.status_code == 200 and followed.url == httpx.URL(f"https://localhost:{port}{target}")
