"""The rendered nginx config on real nginx: TLS, redirect, headers, streaming, rate limits, auth, body size."""

from __future__ import annotations

import json
import socket
import ssl

import httpx
import pytest

from tests.integration.edge.conftest import BURST, DASHBOARD_PASSWORD, RPM, Edge

INTERMEDIATE_TLS12 = {
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
}


def _handshake(edge: Edge, version: ssl.TLSVersion, ciphers: str | None = None, alpn: list[str] | None = None):
    """(protocol, cipher, alpn) of a handshake that offers exactly ``version``; raises ssl.SSLError if refused."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(edge.cert_file))
    ctx.minimum_version = ctx.maximum_version = version
    # OpenSSL 3 clients refuse TLS 1.0/1.1 themselves at the default level; lower it so that any refusal
    # seen here is the server's.
    ctx.set_ciphers(ciphers or "ALL:@SECLEVEL=0")
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", edge.https), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.version(), tls.cipher()[0], tls.selected_alpn_protocol()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_versions_are_refused(edge: Edge, version: ssl.TLSVersion) -> None:
    with pytest.raises(ssl.SSLError):
        _handshake(edge, version)


def test_tls12_and_13_accepted_with_intermediate_ciphers_and_http2(edge: Edge) -> None:
    protocol, cipher, _ = _handshake(edge, ssl.TLSVersion.TLSv1_2)
    assert protocol == "TLSv1.2" and cipher in INTERMEDIATE_TLS12
    protocol, cipher, alpn = _handshake(edge, ssl.TLSVersion.TLSv1_3, alpn=["h2", "http/1.1"])
    assert protocol == "TLSv1.3" and cipher.startswith("TLS_") and alpn == "h2"


def test_cbc_and_non_forward_secret_ciphers_are_refused(edge: Edge) -> None:
    for weak in ("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256:AES256-SHA"):
        with pytest.raises(ssl.SSLError):
            _handshake(edge, ssl.TLSVersion.TLSv1_2, ciphers=weak)


def test_plain_http_redirects_to_https_and_serves_acme_challenges(edge: Edge) -> None:
    response = httpx.get(f"http://127.0.0.1:{edge.http}/v1/models?x=1", headers={"Host": "llm.test"})
    assert response.status_code == 301
    # No DOMAIN: the address `up` prints (127.0.0.1 here), never the client's Host header.
    assert response.headers["location"] == f"https://127.0.0.1:{edge.https}/v1/models?x=1"
    token = edge.layout.acme_webroot / ".well-known" / "acme-challenge" / "tok-123"
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text("tok-123.thumbprint")
    served = httpx.get(f"http://127.0.0.1:{edge.http}/.well-known/acme-challenge/tok-123")
    assert served.status_code == 200 and served.text == "tok-123.thumbprint"
    assert httpx.get(f"http://127.0.0.1:{edge.http}/.well-known/acme-challenge/none").status_code == 404


def test_security_headers_request_id_and_forwarding(edge: Edge) -> None:
    with edge.client("127.0.0.2") as client:
        response = client.get("/health/live")
        assert response.status_code == 200
        headers = response.headers
        assert headers["strict-transport-security"].startswith("max-age=63072000")
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "nginx/" not in headers.get("server", "") and headers.get("server") == "nginx"
        generated = headers["x-request-id"]
        assert len(generated) == 32 and response.json()["headers"]["X-Request-ID"] == generated
        assert "X-Client-Request-ID" not in response.json()["headers"]

        echoed = client.get("/v1/echo", headers={"X-Request-ID": "client-id-42"})
        seen = echoed.json()["headers"]
        # nginx's id is the request id; the client's travels on as X-Client-Request-ID.
        assert seen["X-Request-ID"] == echoed.headers["x-request-id"] != "client-id-42"
        assert seen["X-Client-Request-ID"] == "client-id-42"
        assert seen["X-Forwarded-Proto"] == "https" and seen["X-Forwarded-For"] == "127.0.0.2"
        bogus = client.get("/v1/echo", headers={"X-Request-ID": "bad id with spaces"})
        assert "X-Client-Request-ID" not in bogus.json()["headers"]
        assert bogus.json()["headers"]["X-Request-ID"] == bogus.headers["x-request-id"] != "bad id with spaces"


def test_streamed_response_arrives_before_the_backend_finishes(edge: Edge) -> None:
    with edge.client("127.0.0.3") as client, client.stream("POST", "/v1/stream", content=b"{}") as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        first = next(line for line in lines if line)
        # The backend holds the rest until /v1/release: a buffering proxy would block here forever.
        assert first == "data: first"
        with edge.client("127.0.0.4") as other:
            assert other.post("/v1/release").status_code == 200
        rest = [line for line in lines if line]
        assert rest == ["data: second", "data: [DONE]"]


def _assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert response.headers["retry-after"] == str(60 // RPM)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert response.headers["strict-transport-security"]


def test_rate_limit_per_address_answers_429_json_while_other_addresses_are_served(edge: Edge) -> None:
    with edge.client("127.0.0.10") as client:
        codes = [client.get("/v1/echo").status_code for _ in range(1 + BURST)]
        assert codes == [200] * (1 + BURST)
        _assert_rate_limited(client.get("/v1/echo"))
    with edge.client("127.0.0.11") as other:
        assert other.get("/v1/echo").status_code == 200


def test_rate_limit_per_api_key_across_addresses_while_other_keys_are_served(edge: Edge) -> None:
    key = {"Authorization": "Bearer sk-test-key-one"}
    codes = []
    for i in range(1 + BURST):  # each request from a fresh address: only the key's budget is spent
        with edge.client(f"127.0.1.{i + 1}") as client:
            codes.append(client.get("/v1/echo", headers=key).status_code)
    assert codes == [200] * (1 + BURST)
    with edge.client("127.0.1.100") as client:
        _assert_rate_limited(client.get("/v1/echo", headers=key))
        served = client.get("/v1/echo", headers={"Authorization": "Bearer sk-test-key-two"})
        assert served.status_code == 200
        # nginx passes the key on unchanged; its digest, not the key, is the limiter's key.
        assert served.json()["headers"]["Authorization"] == "Bearer sk-test-key-two"


@pytest.mark.parametrize(("path", "source"), [("/prometheus/graph", "127.0.0.20"), ("/ray/", "127.0.0.22")])
def test_dashboards_refuse_unauthenticated_access(edge: Edge, path: str, source: str) -> None:
    with edge.client(source) as client:
        assert client.get(path).status_code == 401
        assert client.get(path, auth=("admin", "wrong-password-123")).status_code == 401
        ok = client.get(path, auth=("admin", DASHBOARD_PASSWORD))
        assert ok.status_code == 200
        assert ok.headers["x-frame-options"] == "SAMEORIGIN"
        # Ray reads an Authorization header as its own token (403 for a basic-auth one): nginx keeps it back.
        assert ("Authorization" in ok.json()["headers"]) is (not path.startswith("/ray/"))
    htpasswd = (edge.layout.conf_dir / "htpasswd").read_text()
    assert DASHBOARD_PASSWORD not in htpasswd and htpasswd.startswith("admin:$6$")
    assert DASHBOARD_PASSWORD not in (edge.layout.conf_dir / "nginx.conf").read_text()


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("/prometheus/api/v1/admin/tsdb/snapshot", "127.0.2.1"),
        ("/prometheus/api/v1//admin/tsdb/snapshot", "127.0.2.2"),
        ("/prometheus/api/v1/%61dmin/tsdb/snapshot", "127.0.2.3"),
        ("/prometheus/api/v1/admin/tsdb/delete_series", "127.0.2.4"),
        ("/prometheus/./api/v1/admin/tsdb/clean_tombstones", "127.0.2.5"),
        ("/prometheus/-/quit", "127.0.2.6"),
        ("/prometheus//-/reload", "127.0.2.7"),
    ],
)
def test_prometheus_admin_api_is_refused_at_the_edge_even_with_the_dashboard_login(
    edge: Edge, path: str, source: str
) -> None:
    """Prometheus runs with --web.enable-admin-api for the backups' TSDB snapshots (taken inside the stack):
    nginx never passes the admin API on, however the path is written."""
    with edge.client(source) as client:
        refused = client.post(path, auth=("admin", DASHBOARD_PASSWORD))
        assert refused.status_code == 403, (path, refused.status_code, refused.text[:200])
        served = client.get("/prometheus/api/v1/query", params={"query": "up"}, auth=("admin", DASHBOARD_PASSWORD))
        assert served.status_code == 200 and served.json()["path"] == "/prometheus/api/v1/query?query=up"


def test_ray_dashboard_is_served_under_ray_with_the_prefix_stripped(edge: Edge) -> None:
    with edge.client("127.0.0.21") as client:
        assert client.get("/ray/api/jobs", auth=("admin", DASHBOARD_PASSWORD)).json()["path"] == "/api/jobs"
        assert client.get("/grafana/d/x").json()["path"] == "/grafana/d/x"


def test_oversized_body_gets_413_in_the_openai_shape(edge: Edge) -> None:
    with edge.client("127.0.0.30") as client:
        small = client.post("/v1/echo", content=b"x" * 1000)
        assert small.status_code == 200 and small.json()["body_bytes"] == 1000
        big = client.post("/v1/echo", content=b"x" * (1024 * 1024 + 1))
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "request_too_large"


def test_batch_file_uploads_have_their_own_body_limit(edge: Edge) -> None:
    with edge.client("127.0.0.31") as client:
        upload = client.post(
            "/v1/files", content=b"x" * (2 * 1024 * 1024)
        )  # BATCH_FILE_MAX_MB, over MAX_REQUEST_BODY_MB
        assert upload.status_code == 200 and upload.json()["body_bytes"] == 2 * 1024 * 1024
        too_big = client.post("/v1/files", content=b"x" * (4 * 1024 * 1024))
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"
        assert "(BATCH_FILE_MAX_MB)" in too_big.json()["error"]["message"]  # the setting that applies here
        other = client.post("/v1/files/x", content=b"x" * (1024 * 1024 + 1))  # only the upload route
        assert other.status_code == 413 and "(MAX_REQUEST_BODY_MB)" in other.json()["error"]["message"]


def test_cors_preflight_for_allowed_origin_only(edge: Edge) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with edge.client("127.0.0.40") as client:
        ok = client.options("/v1/chat/completions", headers={"Origin": "https://app.example.com", **preflight})
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "access-control-allow-credentials" not in ok.headers
        other = client.get("/v1/echo", headers={"Origin": "https://evil.example.net"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def test_stub_status_on_the_internal_listener_only(edge: Edge) -> None:
    status = httpx.get(f"http://127.0.0.1:{edge.status}/nginx_status")
    assert status.status_code == 200 and "Active connections" in status.text
    with edge.client("127.0.0.50") as client:
        assert client.get("/nginx_status").status_code == 404


def test_unknown_paths_answer_404_json(edge: Edge) -> None:
    with edge.client("127.0.0.51") as client:
        response = client.get("/etc/passwd")
        assert response.status_code == 404 and json.loads(response.text)["error"]["type"] == "not_found_error"
        for other in ("/tokenizer", "/tokenize/x", "/v2/tokenize"):  # only vLLM's two exact paths pass
            assert client.post(other, json={}).status_code == 404, other


def test_tokenizer_endpoints_reach_serve(edge: Edge) -> None:
    with edge.client("127.0.0.52") as client:
        for path in ("/tokenize", "/detokenize"):
            response = client.post(path, json={"model": "m", "prompt": "hi"})
            assert response.status_code == 200 and response.json()["path"] == path, path


def test_grafana_login_has_its_own_lower_limit(edge: Edge) -> None:
    login_burst = 5
    with edge.client("127.0.0.60") as client:
        codes = [client.post("/grafana/login", content=b"{}").status_code for _ in range(login_burst + 1)]
        assert codes == [200] * (login_burst + 1)
        limited = client.post("/grafana/login", content=b"{}")
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert limited.headers["retry-after"] == "6"  # NGINX_LOGIN_RATE_LIMIT_RPM=10
        assert client.get("/grafana/d/home").status_code == 200  # the rest of Grafana is not held back
