"""Datadog through the agent's DogStatsD (the ``datadog`` package): counters, gauges and events.

Only built when DATADOG_API_KEY is set. Tags: ``env:<DATADOG_ENV>``, ``service:appliance``,
``version:<version>`` and DATADOG_TAGS. Sending never holds up the supervisor: packets go through the library's
background sender (a bounded queue; full means dropped, and a packet older than 10 s is dropped rather than sent
late), so a name that does not resolve, a slow DNS server or an agent that is down costs the caller a queue put.
The library warns once per dropped packet; that is cut to one warning per ``WARN_EVERY_S``.
"""

from __future__ import annotations

import logging
import threading
import time

from datadog.dogstatsd.base import DogStatsd

from appliance import __version__

_LOGGER = logging.getLogger(__name__)
PREFIX = "appliance.supervisor"
QUEUE_SIZE = 1000  # packets; the supervisor sends a handful a minute
STOP_TIMEOUT_S = 2.0  # at exit: what is still queued after this is dropped
WARN_EVERY_S = 600.0


class _OncePerInterval(logging.Filter):
    """Lets the library's 'dropping the packet' warnings through once per interval, with how many were cut."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last = -interval_s
        self._cut = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or "dropping the packet" not in record.getMessage():
            return True
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval_s:
                self._cut += 1
                return False
            if self._cut:
                record.msg = f"{record.getMessage()} ({self._cut} more such warnings in the last interval)"
                record.args = ()
            self._last, self._cut = now, 0
        return True


_FILTER = _OncePerInterval(WARN_EVERY_S)
logging.getLogger("datadog.dogstatsd").addFilter(_FILTER)


class DatadogSink:
    def __init__(self, host: str, port: int, *, env: str, extra_tags: list[str]) -> None:
        self.tags = [f"env:{env}", "service:appliance", f"version:{__version__}", *extra_tags]
        self._client = DogStatsd(
            host=host,
            port=port,
            constant_tags=self.tags,
            disable_telemetry=True,
            disable_background_sender=False,
            sender_queue_size=QUEUE_SIZE,
            sender_queue_timeout=0,  # a full queue drops the packet at once; the caller never waits
        )

    def increment(self, name: str, tags: list[str] | None = None) -> None:
        self._client.increment(f"{PREFIX}.{name}", tags=tags or [])

    def gauge(self, name: str, value: float, tags: list[str] | None = None) -> None:
        self._client.gauge(f"{PREFIX}.{name}", value, tags=tags or [])

    def event(self, title: str, text: str, *, alert_type: str = "warning", tags: list[str] | None = None) -> None:
        self._client.event(title, text, alert_type=alert_type, tags=tags or [], source_type_name="appliance")

    def close(self) -> None:
        self._client.stop(timeout=STOP_TIMEOUT_S)
        self._client.close_socket()
