"""`nginx -t` passes for every config variant: TLS mode × PII × dashboards × Datadog (and CORS, OCSP)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from appliance.certs.selfsigned import issue_self_signed
from appliance.certs.store import CertPaths, served_name
from appliance.config.render.nginx import render_nginx
from tests.integration.edge.conftest import edge_config, local_layout, need_tools, nginx_test, write_rendered

TLS = {
    "self-signed": {"TLS_MODE": "self-signed"},
    "acme": {"TLS_MODE": "acme", "DOMAIN": "appliance.test", "ACME_EMAIL": "ops@appliance.test"},
    "provided": {
        "TLS_MODE": "provided",
        "DOMAIN": "llm.example.com",
        "TLS_CERT_PATH": "/etc/ssl/llm.pem",
        "TLS_KEY_PATH": "/etc/ssl/llm.key",
    },
}
VARIANTS = list(itertools.product(TLS, (False, True), (False, True), (False, True)))


@pytest.mark.parametrize(
    ("tls", "pii", "dashboards", "datadog"),
    VARIANTS,
    ids=[f"{t}-pii{int(p)}-dash{int(d)}-dd{int(dd)}" for t, p, d, dd in VARIANTS],
)
def test_nginx_accepts_every_variant(tmp_path: Path, tls: str, pii: bool, dashboards: bool, datadog: bool) -> None:
    need_tools()
    env = {
        **TLS[tls],
        "PII_ENABLED": str(pii).lower(),
        "DASHBOARDS_ENABLED": str(dashboards).lower(),
        "RAY_DASHBOARD_ENABLED": str(dashboards).lower(),
        "CORS_ALLOWED_ORIGINS": "*" if datadog else "https://a.example.com,http://localhost:3000",
    }
    root = tmp_path / "conf-root"
    secrets = {"DATADOG_API_KEY": "0123456789abcdef0123456789abcdef"} if datadog else {}
    config = edge_config(root / "config", secrets, **env)
    assert bool(config.secrets.datadog_api_key) is datadog
    layout = local_layout(root, http=18080, https=18443, status=18081, backend="127.0.0.1:18000")
    (root / "run").mkdir(parents=True)
    issue_self_signed(CertPaths(layout.cert_dir).served_dir(config.settings), [served_name(config.settings)])
    rendered = render_nginx(config, layout, ocsp=tls == "acme")
    if tls == "acme":  # OCSP stapling reads the issuer chain
        live = CertPaths(layout.cert_dir).served_dir(config.settings)
        (live / "chain.pem").write_bytes((live / "fullchain.pem").read_bytes())
    write_rendered(rendered, layout.conf_dir)
    checked = nginx_test(layout)
    assert checked.returncode == 0, checked.stderr
    conf = rendered.conf
    assert ("location /prometheus/" in conf) is dashboards and ("location /ray/" in conf) is dashboards
    assert ("ssl_stapling on" in conf) is (tls == "acme")
    assert ('"service":"nginx"' in conf) is datadog
    assert f"server_name {config.settings.domain or '_'};" in conf
