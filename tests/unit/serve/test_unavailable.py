"""The answers a client gets while a model cannot serve: 503 + Retry-After, and an error event ending a cut stream."""

import json

import pytest

pytest.importorskip("ray.serve.llm")

from appliance.serve.ingress import (  # noqa: E402 - after the skip
    RETRY_AFTER_SECONDS,
    _error_event,
    _server_error,
    _stream_server_error,
    _unavailable,
)
from appliance.serve.usage import UsageWatcher  # noqa: E402


def test_unavailable_is_a_503_with_retry_after_in_the_openai_shape() -> None:
    err = _unavailable("tiny-a")
    assert err.status == 503 and ("Retry-After", str(RETRY_AFTER_SECONDS)) in err.headers
    body = json.loads(err.body())["error"]
    assert body["type"] == "service_unavailable_error" and body["code"] == "model_unavailable"


def test_a_cut_stream_ends_with_an_error_event_the_gate_keeps_as_503() -> None:
    event = _error_event("tiny-a")
    watcher = UsageWatcher(stream=True, strip_usage=False, request_id="rid-1")
    out = watcher.on_body({"body": event.encode() + b"data: [DONE]\n\n", "more_body": False}, 0.0)
    first, done, _ = out["body"].split(b"\n\n")
    error = json.loads(first[len(b"data: "):])["error"]
    assert error["type"] == "service_unavailable_error" and error["code"] == "model_unavailable"
    assert "rid-1" in error["message"] and done == b"data: [DONE]" and watcher.done


def test_engine_errors_are_told_from_other_chunks() -> None:
    from ray.llm._internal.serve.core.configs.openai_api_models import ErrorInfo, ErrorResponse

    dead = ErrorResponse(error=ErrorInfo(message="EngineCore encountered an issue.", type="InternalServerError", code=500))
    bad = ErrorResponse(error=ErrorInfo(message="too long", type="BadRequestError", code=400))
    assert _server_error(dead) and _server_error([dead]) and not _server_error(bad) and not _server_error("data: {}")
    engine_event = 'data: {"error": {"message": "EngineCore encountered an issue.", "type": "InternalServerError", "code": 500}}\n\n'
    assert _stream_server_error([engine_event]) and _stream_server_error(engine_event)
    assert not _stream_server_error(['data: {"choices": [{"text": "\\"error\\""}]}\n\n'])
    assert not _stream_server_error(['data: {"error": {"message": "x", "code": 400}}\n\n'])
