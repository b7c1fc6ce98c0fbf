"""ACME end to end: pebble + certbot through the project's nginx webroot, renewal, failures, roll-back."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from cryptography import x509

from appliance.certs.inspect import load_cert_info
from appliance.certs.nginx_control import local_nginx
from appliance.certs.renewal import renew
from appliance.certs.store import CertPaths
from tests.helpers import set_line
from tests.integration.edge.acme import Pebble, running_pebble
from tests.integration.edge.conftest import Edge, make_edge, need_tools, stop

DOMAIN = "appliance.test"


@pytest.fixture(scope="module")
def acme_edge(tmp_path_factory: pytest.TempPathFactory, backend_port: int) -> Iterator[tuple[Edge, Pebble]]:
    """nginx in TLS_MODE=acme for appliance.test (starting on a bootstrap self-signed pair) and pebble."""
    need_tools()
    root = tmp_path_factory.mktemp("acme")
    edge = make_edge(root / "edge", backend_port, TLS_MODE="acme", DOMAIN=DOMAIN, ACME_EMAIL="ops@appliance.test")
    with running_pebble(root / "pebble", edge.http) as pebble:
        edge.config = edge.config.__class__(
            **{
                **edge.config.__dict__,
                "settings": edge.config.settings.model_copy(update={"acme_directory_url": pebble.directory}),
            }
        )
        yield edge, pebble
    stop(edge.proc)


class Alerts(list):
    def __call__(self, title: str, text: str) -> None:
        self.append((title, text))


def _renew(edge: Edge, pebble: Pebble, alerts: Alerts, **kwargs):
    test, reload = local_nginx(edge.layout.conf_dir / "nginx.conf")
    return renew(
        edge.config,
        alert=alerts,
        test_nginx=test,
        reload_nginx=reload,
        paths=CertPaths(edge.layout.cert_dir),
        certbot_env={"REQUESTS_CA_BUNDLE": str(pebble.ca_bundle)},
        certbot_timeout=120,
        **kwargs,
    )


def served_serial(edge: Edge) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", edge.https), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def wait_served(edge: Edge, serial: int, timeout: float = 20) -> None:
    """nginx reloads asynchronously (new workers replace old ones): wait until ``serial`` is served."""
    deadline = time.monotonic() + timeout
    while served_serial(edge) != serial:
        assert time.monotonic() < deadline, f"nginx still serves another serial than {serial:x}"
        time.sleep(0.1)


def _leftovers(edge: Edge) -> list[str]:
    """Hidden entries in live/ other than the versions store: staging dirs or links a swap left behind."""
    return sorted(
        p.name for p in (edge.layout.cert_dir / "live").iterdir() if p.name.startswith(".") and p.name != ".versions"
    )


def test_issue_then_forced_renewal_is_served_without_dropping_a_connection(acme_edge) -> None:
    edge, pebble = acme_edge
    alerts = Alerts()
    bootstrap = load_cert_info(edge.cert_file)
    first = _renew(edge, pebble, alerts)  # the bootstrap self-signed pair is due (no chain): issue
    assert first.ok and first.renewed, first.reason
    assert "Pebble" in first.cert.issuer and first.cert.sans == (DOMAIN,) and first.cert.serial != bootstrap.serial
    wait_served(edge, first.cert.serial)
    assert (edge.layout.cert_dir / "live" / DOMAIN / "privkey.pem").stat().st_mode & 0o777 == 0o600

    not_due = _renew(edge, pebble, alerts)
    assert not_due.ok and not not_due.renewed and not_due.reason.startswith("not due")

    with edge.client("127.0.2.1", trust_cert=False) as client, client.stream("POST", "/v1/stream") as stream:
        lines = stream.iter_lines()
        assert next(line for line in lines if line) == "data: first"
        second = _renew(edge, pebble, alerts, force=True)  # renewal + reload while a stream is open
        assert second.ok and second.renewed and second.cert.serial != first.cert.serial
        wait_served(edge, second.cert.serial)
        with edge.client("127.0.2.2", trust_cert=False) as other:
            other.post("/v1/release")
        assert [line for line in lines if line] == ["data: second", "data: [DONE]"]
    assert alerts == []
    assert _leftovers(edge) == []  # nothing staged is left; the previous pair is kept in live/.versions/


def test_dry_run_asks_the_acme_server_but_changes_nothing(acme_edge) -> None:
    edge, pebble = acme_edge
    before = edge.cert_file.read_bytes()
    alerts = Alerts()
    result = _renew(edge, pebble, alerts, force=True, dry_run=True)
    assert result.ok and not result.renewed and result.reason.startswith("dry run"), result.reason
    assert edge.cert_file.read_bytes() == before and alerts == []


def test_cli_renew_and_status_against_pebble(acme_edge) -> None:
    edge, pebble = acme_edge
    config_dir = edge.root / "config"
    set_line(config_dir / ".env", "ACME_DIRECTORY_URL", pebble.directory)
    before = load_cert_info(edge.cert_file)
    common = [
        "--env",
        str(config_dir / ".env"),
        "--secrets",
        str(config_dir / ".secrets"),
        "--certs-dir",
        str(edge.layout.cert_dir),
    ]
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(pebble.ca_bundle)}
    renewed = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance",
            "certs",
            "renew",
            "--force",
            "--json",
            "--nginx-conf",
            str(edge.layout.conf_dir / "nginx.conf"),
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=edge.root,
    )
    assert renewed.returncode == 0, renewed.stderr
    result = json.loads(renewed.stdout)
    assert result["renewed"] and int(result["serial"], 16) != before.serial
    wait_served(edge, int(result["serial"], 16))
    status = subprocess.run(
        [sys.executable, "-m", "appliance", "certs", "status", "--json", *common],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=edge.root,
    )
    facts = json.loads(status.stdout)
    assert status.returncode == 0 and facts["mode"] == "acme" and facts["sans"] == [DOMAIN]
    assert "Pebble" in facts["issuer"] and facts["serial"] == result["serial"]


def test_failed_challenge_keeps_the_old_certificate_and_alerts(acme_edge) -> None:
    edge, pebble = acme_edge
    before = load_cert_info(edge.cert_file)
    alerts = Alerts()
    pebble.point(DOMAIN, "127.0.0.2")  # pebble now fetches the challenge where nginx does not listen
    try:
        result = _renew(edge, pebble, alerts, force=True)
    finally:
        pebble.unpoint(DOMAIN)
    assert not result.ok and "certbot failed" in result.reason
    assert [title for title, _ in alerts] == ["certificate renewal failed"]
    assert load_cert_info(edge.cert_file).serial == before.serial
    assert served_serial(edge) == before.serial
    assert not [name for name in _leftovers(edge) if ".new-" in name]


def test_stopped_acme_server_keeps_the_old_certificate_and_alerts(acme_edge) -> None:
    edge, pebble = acme_edge
    before = load_cert_info(edge.cert_file)
    alerts = Alerts()
    stop(pebble.proc)
    result = _renew(edge, pebble, alerts, force=True)
    assert not result.ok and "certbot failed" in result.reason
    assert len(alerts) == 1 and "the previous certificate keeps serving" in alerts[0][1]
    assert served_serial(edge) == before.serial and load_cert_info(edge.cert_file).serial == before.serial
    assert not [name for name in _leftovers(edge) if ".new-" in name]
