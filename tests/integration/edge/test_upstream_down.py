"""The edge while the service behind it is down: 503 + Retry-After in the OpenAI shape, never a bare 502."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.integration.edge.conftest import Edge, make_edge, need_tools, start_backend, stop


@pytest.fixture(scope="module")
def lonely_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Edge, int]]:
    """nginx in front of a backend of its own, which the tests stop and start."""
    need_tools()
    port = free_port()
    running = make_edge(Path(tmp_path_factory.mktemp("lonely")), port)
    yield running, port
    stop(running.proc)


def _assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["type"] == "service_unavailable_error"
    assert error["code"] == "upstream_unavailable"
    assert "x-request-id" in response.headers  # the security headers are on the error page too


def test_a_stopped_upstream_answers_503_with_retry_after_and_recovers(lonely_edge: tuple[Edge, int]) -> None:
    edge, port = lonely_edge
    backend = start_backend(port)
    with edge.client() as client:
        assert client.post("/v1/echo", json={}).status_code == 200
        stop(backend)  # connection refused from now on
        _assert_unavailable(client.post("/v1/chat/completions", json={"model": "m"}))
        _assert_unavailable(client.get("/health/ready"))
        backend = start_backend(port)
        try:
            assert client.post("/v1/echo", json={}).status_code == 200  # back without touching nginx
        finally:
            stop(backend)


def test_an_upstream_error_status_is_passed_through_not_replaced(edge: Edge) -> None:
    """Only nginx's own 502/504 (no upstream) become 503; the service's own answers reach the client."""
    with edge.client() as client:
        assert client.get("/v1/fail").status_code == 500
