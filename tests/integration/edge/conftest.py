"""Real nginx (Debian's) with the appliance's rendered config, in front of a small local backend.

Everything listens on 127.0.0.1 high ports; nginx runs as root with a private prefix, pid file and logs.
Rate-limited tests send from their own loopback source address (127.0.0.x) so they do not share budgets.
"""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from appliance.certs.selfsigned import issue_self_signed
from appliance.certs.store import CertPaths
from appliance.config import ApplianceConfig, ConfigFiles, load_config
from appliance.config.render.nginx import NginxLayout, RenderedNginx, render_nginx
from appliance.stack.render import write_if_changed
from tests.helpers import free_port, make_config_dir, need, set_line

HERE = Path(__file__).parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
JS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
DASHBOARD_PASSWORD = "correct-horse-battery-staple"
RPM = 6  # low, so that the burst is reached in a few requests; Retry-After = 10 s
BURST = 3


def need_tools() -> None:
    missing = [
        what
        for what, ok in (
            ("nginx (Debian package nginx)", Path(NGINX).exists()),
            ("njs module (Debian package libnginx-mod-http-js)", JS_MODULE.exists()),
        )
        if not ok
    ]
    if not missing:
        return
    need(False, f"missing: {', '.join(missing)}; `make test` installs them (TEST_TOOLS in the Makefile)")


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def edge_config(root: Path, secrets: dict[str, str] | None = None, **env: str) -> ApplianceConfig:
    """A config dir made from the examples, with the given .env values and a dashboard password."""
    root.mkdir(parents=True, exist_ok=True)
    make_config_dir(root)
    for key, value in {"DASHBOARD_PASSWORD": DASHBOARD_PASSWORD, **(secrets or {})}.items():
        set_line(root / ".secrets", key, value)
    for key, value in env.items():
        set_line(root / ".env", key, value)
    return load_config(ConfigFiles(env=root / ".env", secrets=root / ".secrets", models=root / "models.yaml"))


def local_layout(root: Path, *, http: int, https: int, status: int, backend: str) -> NginxLayout:
    return NginxLayout(
        conf_dir=root / "conf",
        cert_dir=root / "certs",
        acme_webroot=root / "certs" / "acme-webroot",
        run_dir=root / "run",
        error_log=str(root / "error.log"),
        access_log=str(root / "access.log"),
        http_listen=f"127.0.0.1:{http}",
        https_listen=f"127.0.0.1:{https}",
        status_listen=f"127.0.0.1:{status}",
        module_dir=JS_MODULE.parent,
        resolver="127.0.0.1",
        worker_user="root",
    ).with_upstreams(serve=backend, grafana=backend, prometheus=backend, ray_dashboard=backend)


def write_rendered(rendered: RenderedNginx, conf_dir: Path) -> None:
    """Put the rendered files where the test nginx reads them, as ``make up`` does (stack.render's writer)."""
    for name, text in rendered.files.items():
        write_if_changed(conf_dir / name, text.encode(), 0o640 if name == "htpasswd" else 0o644)


def nginx_cmd(layout: NginxLayout, *args: str) -> list[str]:
    return [NGINX, "-c", str(layout.conf_dir / "nginx.conf"), "-e", layout.error_log, *args]


def nginx_test(layout: NginxLayout) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nginx_cmd(layout, "-t", "-q"), capture_output=True, text=True, timeout=30)


@dataclass
class Edge:
    root: Path
    config: ApplianceConfig
    layout: NginxLayout
    http: int
    https: int
    status: int
    backend_port: int
    proc: subprocess.Popen

    @property
    def base(self) -> str:
        return f"https://localhost:{self.https}"

    @property
    def cert_file(self) -> Path:
        return CertPaths(self.layout.cert_dir).served_fullchain(self.config.settings)

    def client(self, source: str = "127.0.0.1", *, trust_cert: bool = True, **kwargs) -> httpx.Client:
        """An HTTPS client from the loopback source address ``source``, trusting the (self-signed) test
        certificate, or verifying nothing (``trust_cert=False``, for ACME test CAs)."""
        if trust_cert:
            verify = ssl.create_default_context(cafile=str(self.cert_file))
        else:
            verify = ssl.create_default_context()
            verify.check_hostname, verify.verify_mode = False, ssl.CERT_NONE
        transport = httpx.HTTPTransport(local_address=source, verify=verify, http2=False)
        return httpx.Client(base_url=self.base, transport=transport, timeout=30, **kwargs)

    def error_log(self) -> str:
        return Path(self.layout.error_log).read_text(errors="replace")


def raw_exchange(
    port: int, request: bytes, *, source: str = "127.0.0.1", cafile: Path | None = None
) -> tuple[int, bytes]:
    """Send ``request`` exactly as given (no client library tidies its header bytes) over TLS when ``cafile``
    is given, else plain; returns (status, body). The request should say ``Connection: close``."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as sock:
        context = ssl.create_default_context(cafile=str(cafile)) if cafile is not None else None
        with context.wrap_socket(sock, server_hostname="localhost") if context else sock as conn:
            conn.sendall(request)
            while chunk := conn.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def start_backend(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(HERE / "backend.py"), str(port)])
    wait_port(port, proc, "the test backend")
    return proc


def start_nginx(layout: NginxLayout) -> subprocess.Popen:
    checked = nginx_test(layout)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen(nginx_cmd(layout, "-g", "daemon off;"))
    wait_port(int(layout.https_listen.rsplit(":", 1)[1]), proc, "nginx")
    return proc


@pytest.fixture(scope="session")
def backend_port() -> Iterator[int]:
    need_tools()
    port = free_port()
    proc = start_backend(port)
    yield port
    stop(proc)


def make_edge(root: Path, backend_port: int, *, published_https: int | None = None, **env: str) -> Edge:
    """nginx listening on free ports; ``published_https``: the HTTPS_PORT the config names when it is not
    nginx's own listen port (as compose publishes the container's 443 on another host port)."""
    http, https, status = free_port(), free_port(), free_port()
    config = edge_config(root / "config", HTTPS_PORT=str(published_https or https), HTTP_PORT=str(http), **env)
    layout = local_layout(root, http=http, https=https, status=status, backend=f"127.0.0.1:{backend_port}")
    (root / "run").mkdir(parents=True, exist_ok=True)
    paths = CertPaths(layout.cert_dir)
    paths.webroot.mkdir(parents=True, exist_ok=True)
    issue_self_signed(paths.served_dir(config.settings), ["localhost", "127.0.0.1"])
    write_rendered(render_nginx(config, layout), layout.conf_dir)
    return Edge(root, config, layout, http, https, status, backend_port, start_nginx(layout))


@pytest.fixture(scope="session")
def edge(tmp_path_factory: pytest.TempPathFactory, backend_port: int) -> Iterator[Edge]:
    """nginx with low rate limits (6/min, burst 3), a 1 MiB body limit (2 MiB files on /v1/files), a CORS allowlist
    and every dashboard (whatever the example's defaults say)."""
    running = make_edge(
        tmp_path_factory.mktemp("edge"),
        backend_port,
        NGINX_RATE_LIMIT_RPM=str(RPM),
        NGINX_RATE_LIMIT_BURST=str(BURST),
        MAX_REQUEST_BODY_MB="1",
        BATCH_FILE_MAX_MB="2",
        CORS_ALLOWED_ORIGINS="https://app.example.com",
        DASHBOARDS_ENABLED="true",
        RAY_DASHBOARD_ENABLED="true",
    )
    yield running
    stop(running.proc)
