"""One logging set-up for every component: JSON lines with a request id, or readable text on a terminal.

``request_id`` is a context variable: code that handles a request sets it once (``bind_request_id``) and
every log record made in that context carries it, across ``await``s. Known secret values registered with
:func:`register_secret` are scrubbed from every record before it is written.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import IO

from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
REDACTED = "<redacted>"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_HANDLER_NAME = "appliance"


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextlib.contextmanager
def bind_request_id(request_id: str | None = None) -> Iterator[str]:
    """Set the request id for the code inside the ``with`` (a new one when none is given)."""
    value = request_id or new_request_id()
    token = REQUEST_ID.set(value)
    try:
        yield value
    finally:
        REQUEST_ID.reset(token)


def register_secret(value: str) -> None:
    """Never let ``value`` appear in a log line (values shorter than 4 characters are ignored)."""
    if len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def _scrub(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``component`` to every record and scrubs registered secrets."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.component = self.component
        if _secrets:
            record.msg = _scrub(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = _scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(rid)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.rid = f" [{request_id}]" if request_id else ""
        return super().format(record)


def make_json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(component)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def setup_logging(
    level: str = "INFO", fmt: str = "auto", *, component: str = "appliance", stream: IO[str] | None = None
) -> logging.Handler:
    """Configure the root logger once (calling again replaces the appliance's handler, not others')."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not _is_tty(stream))
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(make_json_formatter() if use_json else TextFormatter())
    handler.addFilter(ContextFilter(component))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
