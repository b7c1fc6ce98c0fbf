"""DogStatsD: the datagrams the supervisor sends, read from a real UDP socket on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

from appliance import __version__
from appliance.telemetry.dogstatsd import DatadogSink
from appliance.telemetry.notifier import SupervisorNotifier
from appliance.telemetry.supervisor_metrics import SupervisorMetrics


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def received(sock: socket.socket) -> str:
    chunks = []
    sock.settimeout(2)
    try:
        while True:
            chunks.append(sock.recv(65535).decode())
            sock.settimeout(0.3)
    except TimeoutError:
        pass
    return "\n".join(chunks)


def test_restart_and_give_up_reach_dogstatsd_with_tags(udp: socket.socket) -> None:
    sink = DatadogSink("127.0.0.1", udp.getsockname()[1], env="staging", extra_tags=["team:ml"])
    notifier = SupervisorNotifier(SupervisorMetrics(), sink)
    notifier.restarted("serve", "died")
    notifier.gave_up("serve", "serve was restarted 5 times recently")
    notifier.renewal(False, "ACME server unreachable")
    sink.close()
    text = received(udp)
    tags = f"env:staging,service:appliance,version:{__version__},team:ml"
    assert f"appliance.supervisor.restarts:1|c|#compose_service:serve,{tags}" in text
    assert f"appliance.supervisor.giveups:1|c|#compose_service:serve,{tags}" in text
    assert "_e{" in text and "appliance: watchdog gave up on serve" in text and "|t:error" in text
    assert "appliance: certificate renewal failed" in text
    assert "appliance.supervisor.certificate.renewals:1|c|#result:failure" in text


def test_prometheus_names_follow_the_contract() -> None:
    metrics = SupervisorMetrics()
    notifier = SupervisorNotifier(metrics)
    notifier.restarted("serve", "died")
    notifier.gave_up("nginx", "x")
    notifier.check_result("disk", True)
    notifier.certificate(12.5)
    notifier.renewal(True, "")
    notifier.rotated("audit.log", 1234)
    text = generate_latest(metrics.registry).decode()
    for line in (
        'appliance_supervisor_restarts_total{service="serve"} 1.0',
        'appliance_supervisor_giveups_total{service="nginx"} 1.0',
        'appliance_supervisor_service_healthy{service="nginx"} 0.0',
        'appliance_supervisor_check_ok{check="disk"} 1.0',
        "appliance_certificate_days_left 12.5",
        'appliance_certificate_renewals_total{result="success"} 1.0',
        "appliance_certificate_last_renewal_ok 1.0",
        'appliance_log_rotated_bytes_total{log="audit.log"} 1234.0',
        "appliance_supervisor_up 1.0",
    ):
        assert line in text, line


def test_an_agent_whose_name_does_not_resolve_never_holds_up_the_supervisor(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """DNS that hangs (Docker's resolver asking an upstream that is gone) and then fails: the notifier's calls
    return while it hangs, and the library's per-packet warning is cut to one."""
    import threading

    import datadog.dogstatsd.base as dogstatsd_base

    release = threading.Event()
    real_getaddrinfo = socket.getaddrinfo

    def hanging_getaddrinfo(host, *args, **kwargs):
        if host == "datadog-agent.invalid":
            release.wait(30)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(dogstatsd_base.socket, "getaddrinfo", hanging_getaddrinfo)
    sink = DatadogSink("datadog-agent.invalid", 8125, env="prod", extra_tags=[])
    notifier = SupervisorNotifier(SupervisorMetrics(), sink)
    done = threading.Event()

    def burst() -> None:
        for _ in range(50):
            notifier.restarted("serve", "died")  # a counter and an event each
        done.set()

    caller = threading.Thread(target=burst, daemon=True)
    with caplog.at_level(logging.WARNING, logger="datadog.dogstatsd"):
        caller.start()
        # a hang detector, not a speed limit: a synchronous client would still be inside getaddrinfo
        assert done.wait(20), "the supervisor's calls waited for DNS"
        release.set()
        sink.close()
    dropped = [r for r in caplog.records if "dropping the packet" in r.getMessage()]
    assert len(dropped) <= 1, [r.getMessage() for r in dropped]


def test_the_drop_warning_filter_lets_one_through_per_interval() -> None:
    from appliance.telemetry.dogstatsd import _OncePerInterval

    cut = _OncePerInterval(600)

    def record(msg: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("datadog.dogstatsd", level, __file__, 1, msg, (), None)

    drop = "Error submitting packet: [Errno 111] Connection refused, dropping the packet and closing the socket"
    assert cut.filter(record(drop)) and not cut.filter(record(drop)) and not cut.filter(record(drop))
    assert cut.filter(record("something else")) and cut.filter(record(drop, logging.DEBUG))
    cut._last -= 601  # the interval passed
    later = record(drop)
    assert cut.filter(later) and "(2 more such warnings in the last interval)" in later.getMessage()
