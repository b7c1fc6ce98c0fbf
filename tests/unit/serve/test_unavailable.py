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
    assert asyncio.run(ApplianceIngress._engine_gone(ingress, "m", False, response=[event])) is True
    assert ingress._watch.marked == ["m"]
    assert asyncio.run(ApplianceIngress._engine_gone(ingress, "m", False, response=[other])) is False  # no answer
    assert asyncio.run(ApplianceIngress._engine_gone(ingress, "other", False, response=[event])) is False  # not ours
    # a model with several replicas: one dead engine is not the model's; the request goes to another replica
    ingress._watch.marked.clear()
    assert asyncio.run(ApplianceIngress._engine_gone(ingress, "m", True, response=[event])) is True
    assert ingress._watch.marked == []


class _Watch:
    def __init__(self, down: bool = False) -> None:
        self.marked: list[str] = []
        self._down = down

    def start(self) -> None:
        pass

    def mark_down(self, model: str) -> None:
        self.marked.append(model)

    def down(self, model: str) -> bool:
        return self._down or model in self.marked

    def seen_ready(self, model: str) -> bool:
        return True


class _Body:
    model = "m"


def _failover_ingress(several: bool, failures: int, *, down: bool = False):
    """An ingress whose calls meet a dead engine ``failures`` times, then answer."""
    from appliance.serve.ingress import _EngineGone

    class Ingress:
        _model_cards = {"m": object()}
        _watch = _Watch(down)
        calls = 0

        def _keeps_several(self, model: str) -> bool:
            return several

        async def _may_take(self, model: str) -> bool:
            return await ApplianceIngress._may_take(self, model)

        async def _call_once(self, model, several_, body, call_method, raw_request):
            type(self).calls += 1
            if type(self).calls <= failures:
                raise _EngineGone
            yield f"answer {type(self).calls}"

    return Ingress()


def _drain(ingress) -> list:
    import asyncio

    async def run():
        return [x async for x in ApplianceIngress._get_response(ingress, body=_Body(), call_method="chat")]

    return asyncio.run(run())


def test_a_model_with_several_replicas_sends_a_request_that_met_a_dead_engine_to_another(monkeypatch) -> None:
    import appliance.serve.ingress as ingress_module
    from appliance.serve.errors import ApiError

    monkeypatch.setattr(ingress_module, "FAILOVER_PAUSE_SECONDS", 0.0)
    several = _failover_ingress(True, failures=2)
    assert _drain(several) == ["answer 3"] and several._watch.marked == []
    one = _failover_ingress(False, failures=1)  # one replica: 503 + Retry-After at once, as before
    with pytest.raises(ApiError) as raised:
        _drain(one)
    assert raised.value.status == 503 and one.calls == 1
    # the watch says every replica is down: no more tries
    gone = _failover_ingress(True, failures=1)
    gone._watch.marked.append("elsewhere")
    gone._watch._down = False
    monkeypatch.setattr(ingress_module, "FAILOVER_SECONDS", 0.0)  # out of time: the model is down, 503
    with pytest.raises(ApiError) as raised:
        _drain(gone)
    assert raised.value.status == 503 and gone._watch.marked[-1] == "m" and gone.calls == 1


def test_health_checks_of_a_model_with_several_replicas_take_any_replicas_answer(monkeypatch) -> None:
    import asyncio

    import appliance.serve.ingress as ingress_module
    from appliance.serve.ingress import CHECK_TRIES

    monkeypatch.setattr(ingress_module, "FAILOVER_PAUSE_SECONDS", 0.0)

    class Ingress:
        def __init__(self, several: bool, failures: int) -> None:
            self.several, self.failures, self.calls = several, failures, 0

        def _keeps_several(self, model: str) -> bool:
            return self.several

        async def health_check_call(self, model_id: str, handle: object) -> None:
            self.calls += 1
            if self.calls <= self.failures:
                raise RuntimeError("EngineDeadError")

    several = Ingress(True, failures=CHECK_TRIES - 1)
    asyncio.run(ApplianceIngress._check_engine(several, "m", None))  # the last try met a live replica
    assert several.calls == CHECK_TRIES
    for ingress in (Ingress(True, failures=CHECK_TRIES), Ingress(False, failures=1)):
        with pytest.raises(RuntimeError):
            asyncio.run(ApplianceIngress._check_engine(ingress, "m", None))


def test_a_replica_whose_engine_died_leaves_when_the_model_keeps_others(monkeypatch) -> None:
    import asyncio
    from types import SimpleNamespace

    from ray.serve.llm import LLMServer

    import appliance.serve.engine as engine_module
    from appliance.serve.engine import ApplianceLLMServer

    class Exited(Exception):
        pass

    def exit_(code: int) -> None:
        raise Exited(code)

    async def dead(self) -> None:
        raise RuntimeError("EngineCore encountered an issue.")

    monkeypatch.setattr(engine_module.os, "_exit", exit_)
    monkeypatch.setattr(LLMServer, "check_health", dead)

    class Replica(ApplianceLLMServer):
        def __del__(self) -> None:  # (LLMServer's is a coroutine: never awaited for an object never started)
            pass

    def server(deployment: dict) -> ApplianceLLMServer:
        replica = object.__new__(Replica)
        replica.engine = object()
        replica._llm_config = SimpleNamespace(model_id="m", deployment_config=deployment)
        return replica

    with pytest.raises(Exited):
        asyncio.run(server({"num_replicas": 2}).check_health())
    with pytest.raises(RuntimeError):  # its only replica: Serve replaces it after its failed checks, as before
        asyncio.run(server({"num_replicas": 1}).check_health())

    # a request that reaches a dead engine, and the watch vLLM's own verdict feeds, leave at once too
    async def run_request(self, request, **kwargs):
        return "ran"

    monkeypatch.setattr(LLMServer, "_run_request", run_request)
    dead_client = SimpleNamespace(errored=True)
    several, one = server({"num_replicas": 2}), server({"num_replicas": 1})
    for replica in (several, one):
        replica.engine = SimpleNamespace(_engine_client=dead_client)
    with pytest.raises(Exited):
        asyncio.run(several._run_request(object(), engine_method="completions"))
    assert asyncio.run(one._run_request(object(), engine_method="completions")) == "ran"
    with pytest.raises(Exited):
        asyncio.run(several._leave_when_dead())
    alive = server({"num_replicas": 2})
    alive.engine = SimpleNamespace(_engine_client=SimpleNamespace(errored=False))
    assert asyncio.run(alive._run_request(object(), engine_method="completions")) == "ran"
    assert not engine_module.engine_dead(alive.engine) and not engine_module.engine_dead(None)


def test_an_engine_dead_error_raised_through_serve_is_a_dead_engine() -> None:
    from vllm.v1.engine.exceptions import EngineDeadError

    from appliance.serve.ingress import _raised_engine_dead

    assert _raised_engine_dead(EngineDeadError()) and not _raised_engine_dead(RuntimeError("boom"))


def test_a_model_the_watch_has_not_seen_ready_yet_is_asked_of_serve_not_waited_for() -> None:
    """A cold start (the serve container restarted): the ingress answers before the engines have loaded, and its
    watch has not swept yet. A request must get 503 + Retry-After while Serve calls the model loading, not wait
    for a replica (a client saw a 60 s hang), and go on once Serve calls it ready."""
    from appliance.serve.errors import ApiError

    class Health:
        def __init__(self) -> None:
            self.state: str | None = "loading"

        async def states(self) -> dict:
            return {} if self.state is None else {"m": {"state": self.state}}

    class Watch(_Watch):
        def seen_ready(self, model: str) -> bool:
            return False

    ingress = _failover_ingress(False, failures=0)
    ingress._watch, ingress._health = Watch(), Health()
    with pytest.raises(ApiError) as raised:
        _drain(ingress)
    assert raised.value.status == 503 and ("Retry-After", str(RETRY_AFTER_SECONDS)) in raised.value.headers
    assert ingress.calls == 0  # never sent to the engine
    ingress._health.state = "ready"
    assert _drain(ingress) == ["answer 1"]
    ingress._health.state = None  # a model Serve's view does not list (yet): as before, it goes on
    assert _drain(ingress) == ["answer 2"]
