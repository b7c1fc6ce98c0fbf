"""The nginx renderer: pure rendering of the typed config (nginx itself runs in tests/integration/edge)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.config.render.nginx import NginxLayout, render_nginx, retry_after_seconds
from appliance.config.render.template import TemplateError, assert_fully_rendered, render_text
from tests.helpers import make_config_dir, set_line

PASSWORD = "a-dashboard-password-1"


def _config(tmp_path: Path, **env: str):
    make_config_dir(tmp_path)
    set_line(tmp_path / ".secrets", "DASHBOARD_PASSWORD", PASSWORD)
    for key, value in env.items():
        set_line(tmp_path / ".env", key, value)
    return load_config(
        ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets", models=tmp_path / "models.yaml")
    )


def test_defaults_render_for_the_compose_stack(tmp_path: Path) -> None:
    config = _config(tmp_path)
    rendered = render_nginx(config)
    conf = rendered.conf
    assert "{{" not in conf
    assert 'set $appliance_upstream "serve:8000";' in conf and '"grafana:3000"' in conf
    assert '"prometheus:9090"' in conf and ('"serve:8265"' in conf) is config.settings.ray_dashboard_enabled
    assert "ssl_certificate /etc/appliance/certs/live/localhost/fullchain.pem;" in conf
    assert "rate=600r/m" in conf and "burst=50 nodelay" in conf and "limit_conn per_address 64;" in conf
    assert "rate=10r/m" in conf  # dashboard logins
    assert "client_max_body_size 10m;" in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf and "ssl_session_tickets off;" in conf
    # no DOMAIN: the address `up` prints; port 443: no port in the redirect
    assert "return 301 https://127.0.0.1$request_uri;" in conf
    assert "add_header Retry-After 1 always;" in conf
    assert "ssl_stapling" not in conf and "Access-Control-Allow-Origin" not in conf
    assert PASSWORD not in conf and PASSWORD not in rendered.files["htpasswd"]
    assert rendered.files["htpasswd"].startswith("admin:$6$")


def test_settings_reach_the_config(tmp_path: Path) -> None:
    conf = render_nginx(
        _config(
            tmp_path,
            DOMAIN="llm.example.com",
            HTTPS_PORT="8443",
            NGINX_RATE_LIMIT_RPM="30",
            NGINX_RATE_LIMIT_BURST="7",
            NGINX_CONN_LIMIT="9",
            MAX_REQUEST_BODY_MB="3",
            DASHBOARDS_ENABLED="false",
            RAY_DASHBOARD_ENABLED="false",
        ),
        ocsp=True,
    ).conf
    assert "server_name llm.example.com;" in conf and "live/llm.example.com/fullchain.pem" in conf
    assert "return 301 https://llm.example.com:8443$request_uri;" in conf
    assert "rate=30r/m" in conf and "burst=7 nodelay" in conf and "limit_conn per_address 9;" in conf
    assert "client_max_body_size 3m;" in conf and "Retry-After 2 always" in conf
    assert "/prometheus/" not in conf and "/ray/" not in conf and "/grafana/" not in conf
    assert "ssl_stapling on;" in conf and "live/llm.example.com/chain.pem" in conf


def test_cors_allowlist_and_wildcard(tmp_path: Path) -> None:
    conf = render_nginx(_config(tmp_path, CORS_ALLOWED_ORIGINS="https://a.example.com,http://localhost:3000")).conf
    assert '"https://a.example.com" $http_origin;' in conf and '"http://localhost:3000" $http_origin;' in conf
    assert "Access-Control-Allow-Credentials" not in conf
    wildcard = render_nginx(_config(tmp_path, CORS_ALLOWED_ORIGINS="*")).conf
    block = re.search(r"map \$http_origin \$cors_allow_origin \{(.*?)\}", wildcard, re.S).group(1)
    assert block.split() == ["default", '"*";']
    assert "Access-Control-Allow-Credentials" not in wildcard


def test_layout_moves_listeners_paths_and_upstreams(tmp_path: Path) -> None:
    layout = NginxLayout(
        conf_dir=tmp_path / "c",
        http_listen="127.0.0.1:1080",
        https_listen="127.0.0.1:1443",
        status_listen="127.0.0.1:1081",
    ).with_upstreams(serve="127.0.0.1:9000")
    rendered = render_nginx(_config(tmp_path), layout)
    assert "listen 127.0.0.1:1443 ssl http2 default_server;" in rendered.conf
    assert '"127.0.0.1:9000"' in rendered.conf and f"js_import apikey from {tmp_path / 'c'}/apikey.js;" in rendered.conf
    assert sorted(rendered.files) == ["apikey.js", "htpasswd", "nginx.conf"]


def test_empty_dashboard_password_renders_an_empty_user_file(tmp_path: Path) -> None:
    config = _config(tmp_path)
    set_line(tmp_path / ".secrets", "DASHBOARD_PASSWORD", "")
    config = load_config(config.files)
    assert render_nginx(config).files["htpasswd"] == ""


@pytest.mark.parametrize(("rpm", "seconds"), [(600, 1), (60, 1), (59, 2), (6, 10), (1, 60)])
def test_retry_after_is_the_time_one_request_frees(rpm: int, seconds: int) -> None:
    assert retry_after_seconds(rpm) == seconds


def test_templates_fail_loudly() -> None:
    with pytest.raises(TemplateError, match="no value for port"):
        render_text("listen {{ port }};", {}, name="t")
    with pytest.raises(TemplateError, match="t:2: an unrendered placeholder"):
        assert_fully_rendered("a\nlisten {{ Port }};", name="t")
    assert (
        render_text("set $x {{ v }}; return 200 '{\"a\":{}}';", {"v": 1}, name="t")
        == "set $x 1; return 200 '{\"a\":{}}';"
    )


def test_conn_limit_above_what_nginx_accepts_is_a_config_error(tmp_path: Path) -> None:
    from appliance.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        _config(tmp_path, NGINX_CONN_LIMIT="65536")
    assert any(i.key == "NGINX_CONN_LIMIT" and "65535" in i.render() for i in err.value.issues)


@pytest.mark.security
def test_port_80_redirect_never_names_the_clients_host(tmp_path: Path) -> None:
    def redirect(**env: str) -> str:
        conf = render_nginx(_config(tmp_path, **env)).conf
        return re.search(r"location / \{\s*return 301 (\S+);", conf).group(1)

    assert redirect() == "https://127.0.0.1$request_uri"  # no DOMAIN: the address `up` prints
    assert redirect(BIND_ADDRESS="192.168.1.20", HTTPS_PORT="8443") == "https://192.168.1.20:8443$request_uri"
    assert redirect(DOMAIN="LLM.Example.com") == "https://llm.example.com$request_uri"
    assert "$host$request_uri" not in render_nginx(_config(tmp_path)).conf


@pytest.mark.security
def test_header_contract_cipher_order_and_relative_redirects(tmp_path: Path) -> None:
    conf = render_nginx(_config(tmp_path, DASHBOARDS_ENABLED="true", RAY_DASHBOARD_ENABLED="true")).conf
    proxied = conf.count("proxy_pass http://$appliance_upstream;")
    for line in (
        "proxy_set_header X-Request-ID $request_id;",
        "proxy_set_header X-Client-Request-ID $appliance_client_request_id;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Real-IP $remote_addr;",
        'proxy_set_header Forwarded "";',
        "proxy_hide_header X-Request-ID;",
        "proxy_hide_header X-Client-Request-ID;",
    ):
        assert conf.count(line) == proxied, line  # every proxied location states the whole contract
    assert "$proxy_add_x_forwarded_for" not in conf and "$http_x_request_id;" in conf  # only in the client map
    assert "ssl_prefer_server_ciphers on;" in conf
    https_server = conf.split("# --- port 443")[1].split("# --- internal")[0]
    assert "absolute_redirect off;" in https_server
