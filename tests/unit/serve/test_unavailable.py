"""The answers a client gets while a model cannot serve: 503 + Retry-After, and an error event ending a cut stream."""

import json

import pytest

pytest.importorskip("ray.serve.llm")

from appliance.serve.ingress import (
    RETRY_AFTER_SECONDS,
    ApplianceIngress,
    _error_event,
    _says_engine_dead,
    _server_error,
    _stream_server_error,
    _unavailable,
)
from appliance.serve.usage import UsageWatcher


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
    error = json.loads(first[len(b"data: ") :])["error"]
    assert error["type"] == "service_unavailable_error" and error["code"] == "model_unavailable"
    assert "rid-1" in error["message"] and done == b"data: [DONE]" and watcher.done


def test_engine_errors_are_told_from_other_chunks() -> None:
    from ray.llm._internal.serve.core.configs.openai_api_models import ErrorInfo, ErrorResponse

    dead = ErrorResponse(
        error=ErrorInfo(message="EngineCore encountered an issue.", type="InternalServerError", code=500)
    )
    bad = ErrorResponse(error=ErrorInfo(message="too long", type="BadRequestError", code=400))
    assert _server_error(dead) and _server_error([dead]) and not _server_error(bad) and not _server_error("data: {}")
    engine_event = 'data: {"error": {"message": "EngineCore encountered an issue.", "type": "InternalServerError", "code": 500}}\n\n'
    assert _stream_server_error([engine_event]) and _stream_server_error(engine_event)
    assert not _stream_server_error(['data: {"choices": [{"text": "\\"error\\""}]}\n\n'])
    assert not _stream_server_error(['data: {"error": {"message": "x", "code": 400}}\n\n'])


def test_vllms_engine_dead_error_is_a_gone_engine_even_while_its_health_check_still_hangs() -> None:
    """The resilience e2e once saw a 500 stream event: the engine had died, its replica's health check timed
    out (None: not known dead), so the event went through. vLLM's EngineDeadError message now decides at once."""
    import asyncio

    from ray.llm._internal.serve.core.configs.openai_api_models import ErrorInfo, ErrorResponse

    class Watch:
        def __init__(self) -> None:
            self.marked: list[str] = []

        def mark_down(self, model: str) -> None:
            self.marked.append(model)

        def down(self, model: str) -> bool:
            return False

        async def check(self, model: str) -> None:
            return None  # no answer in time

    class Ingress:
        _model_cards = {"m": object()}
        _watch = Watch()

    event = 'data: {"error": {"message": "EngineCore encountered an issue. See stack trace (above) for the root cause.", "code": 500}}\n\n'
    other = 'data: {"error": {"message": "boom", "code": 500}}\n\n'
    dead = ErrorResponse(error=ErrorInfo(message="EngineCore encountered an issue.", type="x", code=500))
    assert _says_engine_dead([event]) and _says_engine_dead(dead) and not _says_engine_dead([other])
    ingress = Ingress()
    assert asyncio.run(ApplianceIngress._engine_gone(ingress, "m", response=[event])) is True
    assert ingress._watch.marked == ["m"]
    assert asyncio.run(ApplianceIngress._engine_gone(ingress, "m", response=[other])) is False  # asked, no answer
    assert asyncio.run(ApplianceIngress._engine_gone(ingress, "other", response=[event])) is False  # not ours
