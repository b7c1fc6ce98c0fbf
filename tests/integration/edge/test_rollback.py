"""A renewal that real nginx refuses (nginx -t fails) is rolled back: the old pair stays live and served."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from appliance.certs.inspect import load_cert_info
from appliance.certs.nginx_control import local_nginx
from appliance.certs.renewal import renew
from appliance.certs.store import CertPaths
from tests.integration.edge.conftest import Edge, make_edge, stop
from tests.integration.edge.test_acme import served_serial, wait_served


@pytest.fixture
def own_edge(tmp_path, backend_port: int) -> Iterator[Edge]:
    running = make_edge(tmp_path / "edge", backend_port)
    yield running
    stop(running.proc)


def test_nginx_t_failure_rolls_back_to_the_serving_pair(own_edge: Edge) -> None:
    edge = own_edge
    test, reload = local_nginx(edge.layout.conf_dir / "nginx.conf")
    alerts: list[tuple[str, str]] = []
    paths = CertPaths(edge.layout.cert_dir)
    good = renew(
        edge.config, force=True, paths=paths, test_nginx=test, reload_nginx=reload, alert=lambda *a: alerts.append(a)
    )
    assert good.ok and good.renewed
    wait_served(edge, good.cert.serial)

    njs = edge.layout.conf_dir / "apikey.js"
    saved = njs.read_bytes()
    njs.unlink()  # the running nginx is unaffected, but `nginx -t` now fails
    try:
        bad = renew(
            edge.config,
            force=True,
            paths=paths,
            test_nginx=test,
            reload_nginx=reload,
            alert=lambda *a: alerts.append(a),
        )
    finally:
        njs.write_bytes(saved)
    assert not bad.ok and "nginx refused the new certificate" in bad.reason and "nginx -t failed" in bad.reason
    assert [title for title, _ in alerts] == ["certificate renewal failed"]
    assert load_cert_info(edge.cert_file).serial == good.cert.serial
    assert served_serial(edge) == good.cert.serial
    assert edge.proc.poll() is None  # nginx kept running
