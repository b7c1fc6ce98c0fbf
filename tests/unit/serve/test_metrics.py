"""The ingress's in-flight gauge is set again while nothing changes: Ray's export drops a gauge series ~30 s after
its last set, and an idle model would show no data instead of 0 (measured with ray 2.60 in the e2e tier)."""

from __future__ import annotations

import threading

import pytest

import appliance.serve.metrics as metrics_module
from appliance.serve.metrics import RayMetrics


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []
        self.again = threading.Event()

    def set(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append((value, tags))
        if len(self.calls) > 2:
            self.again.set()


def test_in_flight_is_set_again_while_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "GAUGE_REFRESH_S", 0.01)
    metrics = RayMetrics()  # Ray's metric objects need no running Ray to be made
    gauge = Recorder()
    monkeypatch.setattr(metrics, "_in_flight", gauge)
    metrics.in_flight("tiny", +1)
    metrics.in_flight("tiny", -1)
    assert gauge.calls[:2] == [(1, {"model": "tiny"}), (0, {"model": "tiny"})]
    assert gauge.again.wait(10), "the idle gauge was not set again"  # a hang detector, not a timing
    assert gauge.calls[2] == (0, {"model": "tiny"})
