"""Datadog through the agent's DogStatsD (the ``datadog`` package): counters, gauges and events.

Only built when DATADOG_API_KEY is set. Tags: ``env:<DATADOG_ENV>``, ``service:appliance``,
``version:<version>`` and DATADOG_TAGS. Sending is fire-and-forget UDP: a missing agent never breaks
the supervisor.
"""

from __future__ import annotations

import logging

from datadog.dogstatsd.base import DogStatsd

from appliance import __version__

_LOGGER = logging.getLogger(__name__)
PREFIX = "appliance.supervisor"


class DatadogSink:
    def __init__(self, host: str, port: int, *, env: str, extra_tags: list[str]) -> None:
        self.tags = [f"env:{env}", "service:appliance", f"version:{__version__}", *extra_tags]
        self._client = DogStatsd(host=host, port=port, constant_tags=self.tags, disable_telemetry=True)

    def increment(self, name: str, tags: list[str] | None = None) -> None:
        self._client.increment(f"{PREFIX}.{name}", tags=tags or [])

    def gauge(self, name: str, value: float, tags: list[str] | None = None) -> None:
        self._client.gauge(f"{PREFIX}.{name}", value, tags=tags or [])

    def event(self, title: str, text: str, *, alert_type: str = "warning", tags: list[str] | None = None) -> None:
        self._client.event(title, text, alert_type=alert_type, tags=tags or [], source_type_name="appliance")

    def flush(self) -> None:
        self._client.flush()

    def close(self) -> None:
        self._client.flush()
        self._client.close_socket()
