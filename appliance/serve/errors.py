"""Errors in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}`` with the right status."""

from __future__ import annotations

import json
from dataclasses import dataclass

RETRY_AFTER_SECONDS = 5  # what a client told 503 waits before it retries (nginx's @upstream_down says the same)

# OpenAI's error types by status, as its API returns them.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_server_error",
    503: "service_unavailable_error",
}


@dataclass(eq=False)  # not frozen: Python sets __traceback__ on exceptions as they travel (contextlib does)
class ApiError(Exception):
    """An error answered to the client. ``code`` is a stable machine-readable reason."""

    status: int
    message: str
    code: str
    param: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # extra response headers (Retry-After, x-ratelimit-*)

    @property
    def type(self) -> str:
        return error_type(self.status)

    def body(self) -> bytes:
        return error_body(self.status, self.message, self.code, self.param)


def error_type(status: int) -> str:
    """OpenAI's error ``type`` for an HTTP status."""
    return _TYPES.get(status, "invalid_request_error" if status < 500 else "internal_server_error")


def error_body(status: int, message: str, code: str, param: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    ).encode()
