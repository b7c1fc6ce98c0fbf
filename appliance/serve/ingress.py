"""The appliance ingress: ray.serve.llm's OpenAI ingress, with the gate in front and the appliance's routes.

The OpenAI protocol (chat, completions, models) is ray.serve.llm's own ``OpenAiIngress``; this subclass adds
per-key filtering of ``/v1/models``, the health probes and the admin endpoint. Auth, request checks,
audit and metrics live in :class:`appliance.serve.gate.Gate`, an ASGI middleware around the whole app.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from ray.llm._internal.serve.constants import DEFAULT_LLM_ROUTER_HTTP_TIMEOUT
from ray.llm._internal.serve.core.configs.openai_api_models import (
    CompletionRequest,
    EmbeddingCompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    OpenAIHTTPException,
    ScoreRequest,
)
from ray.llm._internal.serve.core.ingress.ingress import router_request_timeout
from ray.llm._internal.serve.core.ingress.utils import _peek_at_generator
from ray.serve.llm.ingress import OpenAiIngress, make_fastapi_ingress
from vllm.entrypoints.openai.responses.protocol import ResponsesRequest
from vllm.entrypoints.pooling.scoring.protocol import RerankRequest

from appliance.batch.routes import BatchRoutes
from appliance.errors import ApplianceError
from appliance.serve.admin_models import AdminModels
from appliance.serve.app_errors import add_application_errors
from appliance.serve.audit import AuditLog
from appliance.serve.builder import keeps_several
from appliance.serve.checks import Principal, echo
from appliance.serve.errors import RETRY_AFTER_SECONDS, ApiError, error_body
from appliance.serve.gate import DETAIL_STATE, PRINCIPAL_STATE, ROUTES, Gate, GateSettings
from appliance.serve.health import READY, EngineWatch, ModelHealth, ReadyCache, with_pii
from appliance.serve.ingress_config import IngressConfig
from appliance.serve.keystore import KeyStore
from appliance.serve.live_models import parse_added, parse_removed, with_added
from appliance.serve.metrics import RayMetrics, ServingGauge
from appliance.serve.pii.bookend import make_bookend
from appliance.serve.pii.service import DEPLOYMENT_NAME as PII_DEPLOYMENT
from appliance.serve.routed import RoutedGenerations
from appliance.serve.usage import ANSI_CODES

_LOGGER = logging.getLogger(__name__)

PII_KEY = "pii"  # the PII service's entry in the health bodies
# A model with several replicas: how long a request that met a dead engine is sent to others (a dead replica
# leaves at its next health check: the ingress's watch asks every 0.5 s, Serve's controller every 2 s)
FAILOVER_SECONDS = 10.0
FAILOVER_PAUSE_SECONDS = 0.2
CHECK_TRIES = 3  # health checks and readiness probes of such a model: any one replica's answer of this many tries


class _EngineGone(Exception):
    """A call met a dead engine or replica before its first answer."""


def _route(method: str, path: str) -> Callable[[FastAPI], Callable[..., Any]]:
    """The ingress's decorator for one route: ``app.post(path)`` and the like."""
    return lambda app: getattr(app, method.lower())(path)


ENDPOINTS = {name: _route(method, path) for name, (method, path) in ROUTES.items()}


class GateMiddleware(Gate):
    """The gate, built inside the replica from plain config (the FastAPI app is pickled to replicas)."""

    def __init__(self, app: Any, config: IngressConfig) -> None:
        keys = KeyStore(config.keys, Path(config.secrets_path) if config.secrets_path else None)
        settings = GateSettings(
            config.auth_enabled,
            config.max_body_bytes,
            with_added(config.caps),
            config.audit_prompts,
            config.pii_embeddings,
        )
        bookend = make_bookend(config.pii) if config.pii is not None else None
        super().__init__(
            app,
            settings,
            keys,
            AuditLog(Path(config.audit_path)),
            RayMetrics(),
            bookend,
            disabled=disabled_models(config),
        )


def disabled_models(config: IngressConfig) -> Callable[[str], bool] | None:
    """Whether a model is disabled in the registry (read at most once a second), or None without a registry."""
    if not config.registry_url:
        return None
    from appliance.lifecycle.routing import DisabledModels
    from appliance.registry.store import RegistryStore

    try:
        return DisabledModels(RegistryStore.open(config.registry_url), ttl_s=1.0).is_disabled
    except ApplianceError as err:
        _LOGGER.warning("model registry not consulted (disabled models are served): %s", err)
        return None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = f"Invalid request: {first.get('msg', 'invalid body')}" + (f" at '{param}'" if param else "")
    return JSONResponse(status_code=400, content=json.loads(error_body(400, message, "invalid_parameter", param)))


def build_fastapi_app(config: IngressConfig) -> FastAPI:
    app = FastAPI(title="LLM appliance", docs_url=None, redoc_url=None, openapi_url=None)
    add_application_errors(app, _validation_error)
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_middleware(GateMiddleware, config=config)
    return app


async def _api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _api_error(exc)


def principal_of(request: Request) -> Principal:
    """The caller the gate authenticated; a request that reached a route without one is refused (deny by default)."""
    principal = request.scope.get("state", {}).get(PRINCIPAL_STATE)
    if not isinstance(principal, Principal):
        raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'.", "missing_api_key")
    return principal


def detail_allowed(request: Request) -> bool:
    """Whether a health probe may see model ids and errors (an admin key, or a probe from inside the container)."""
    return request.scope.get("state", {}).get(DETAIL_STATE) is True


class ApplianceIngress(BatchRoutes, AdminModels, RoutedGenerations, OpenAiIngress):
    def __init__(
        self,
        llm_deployments: dict[str, Any],
        model_cards: dict[str, Any],
        *,
        ingress_config: IngressConfig,
        pii_service: Any = None,
        generations: Any = None,
        **kwargs: Any,
    ):
        # pii_service: the PIIService handle; bound here so Serve deploys it, called by name from the gate
        # generations: model generations starting beside the serving ones (bound so Serve deploys them; requests
        # reach them by name once the registry routes there: appliance.serve.routed)
        super().__init__(llm_deployments, model_cards, **kwargs)
        self._config = ingress_config
        self._caps = with_added(ingress_config.caps)  # and the models added to the running application since
        self._added_infos: dict[str, Any] = {}
        self._removed: set[str] = set()  # models it started with that a deploy removed since
        self._disabled = disabled_models(ingress_config)
        self._started = time.time()
        self._init_routes(ingress_config.registry_url, llm_deployments)
        self._health = ModelHealth(self.deployment_names, several=self._keeps_several)
        self._ready = ReadyCache(self._probe_models, ttl=ingress_config.ready_cache_seconds)
        self._checks: dict[str, Callable[[], Awaitable[Any]]] = {
            mid: functools.partial(self._check_engine, mid, handle) for mid, handle in llm_deployments.items()
        }
        self._watch = EngineWatch(
            self._checks, self._health.states, on_change=self._ready.invalidate, on_serving=ServingGauge().set
        )
        # the PII service is a deployment every request passes through when masking is on: readiness covers it
        self._pii_health = ModelHealth({PII_KEY: PII_DEPLOYMENT}) if pii_service is not None else None

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve's call when the application's user_config changes (and at the start): the models added to the
        running application since it was built (appliance.serve.live_models) join the model table, the request
        limits, the health checks and ``/admin/models``; one no longer listed as added, or listed as removed (a
        deploy dropped it, whether the replica started with it or not), leaves them: its requests get 404 from
        the gate, as for a model never served."""
        from ray import serve

        from appliance.serve.live_models import ADDED_CAPS, REMOVED

        added, removed = parse_added(user_config), parse_removed(user_config)
        before = set(self._model_cards)
        app_name = serve.get_replica_context().app_name
        for model_id in [m for m in self._model_cards if m in removed or (m in self._added_infos and m not in added)]:
            tables: tuple[dict[str, Any], ...] = (
                self._added_infos,
                self._model_cards,
                self._default_serve_handles,
                self._checks,
                self._configured_serve_handles,
                self._built_with,
                self.deployment_names,
                ADDED_CAPS,
            )
            for table in tables:
                table.pop(model_id, None)
            _LOGGER.info("model %s: no longer served by this application", model_id)
        REMOVED.clear()
        REMOVED.update(removed)
        self._removed = removed
        for model_id, (deployment, card, limits, info) in added.items():
            if model_id in self._built_with and model_id not in self._added_infos:
                continue  # started with it: models.yaml's model wins
            if self._built_with.get(model_id) != deployment:
                handle = serve.get_deployment_handle(deployment, app_name=app_name)
                self._default_serve_handles[model_id] = handle
                self._configured_serve_handles.pop(model_id, None)
                self._built_with[model_id] = self.deployment_names[model_id] = deployment
                self._checks[model_id] = functools.partial(self._check_engine, model_id, handle)
                _LOGGER.info("model %s: served by %s (added to the running application)", model_id, deployment)
            self._model_cards[model_id] = ModelCard.model_validate(card)
            ADDED_CAPS[model_id] = limits
            self._added_infos[model_id] = info
        if set(self._model_cards) != before:
            self._ready.clear()  # /health/ready answers about the new set of models from its next call

    async def serves(self, model_id: str) -> bool:
        """Whether this replica serves ``model_id`` (the lifecycle asks before it routes a new model here, and
        after it removed one, before it stops its engine)."""
        return model_id in self._model_cards

    def model_infos(self) -> tuple[Any, ...]:
        """What ``/admin/models`` shows: the models the replica started with, then those added since."""
        started = (m for m in self._config.models if m.id not in self._removed and m.id not in self._added_infos)
        return (*started, *self._added_infos.values())

    async def check_health(self) -> None:
        """Serve's periodic check of the ingress: starts the engine watch and the batch runner early (they need
        the replica's loop)."""
        self._watch.start()
        self.start_batch_runner()

    async def _get_response(
        self, *, body: Any, call_method: str, raw_request: Request | None = None
    ) -> AsyncGenerator[Any, None]:
        """The stock call to the model, answered 503 + Retry-After while the model cannot take it (its engine
        dead or restarting, no running replica) instead of Ray's 500; a stream cut by an engine crash ends with
        an OpenAI error event (then ``[DONE]``) instead of a dropped connection. A model that keeps several
        replicas fails over instead: a request that met a dead engine before its first answer goes to another
        replica (the dead one leaves at its next health check: :meth:`ApplianceLLMServer.check_health`)."""
        self._watch.start()
        model = body.model
        if model in self._model_cards and (self._watch.down(model) or not await self._may_take(model)):
            raise _unavailable(model)
        several = self._keeps_several(model)
        deadline = time.monotonic() + FAILOVER_SECONDS
        while True:
            try:
                async for response in self._call_once(model, several, body, call_method, raw_request):
                    yield response
                return
            except _EngineGone as gone:
                if not several or time.monotonic() >= deadline or self._watch.down(model):
                    if several:  # (one replica: _engine_gone marked it down already)
                        self._watch.mark_down(model)
                    raise _unavailable(model) from gone.__cause__
                _LOGGER.warning("model %s: a request met a dead engine; it goes to another replica", model)
                await asyncio.sleep(FAILOVER_PAUSE_SECONDS)

    async def _may_take(self, model: str) -> bool:
        """Whether a request may go to the model's engine. Once the watch has seen the model ready its verdicts
        decide (:meth:`EngineWatch.down`); before that — the first seconds of a (re)started ingress replica, while
        engines still load — Serve's view does: a request sent to an engine with no running replica would wait
        for one, without an answer, for as long as the load takes (a client saw a 60 s hang after a restart of
        the serve container), where it should get 503 + Retry-After. A model Serve's view does not list goes on."""
        if self._watch.seen_ready(model):
            return True
        state = (await self._health.states()).get(model, {}).get("state")
        return state is None or state == READY

    async def _call_once(
        self, model: str, several: bool, body: Any, call_method: str, raw_request: Request | None
    ) -> AsyncGenerator[Any, None]:
        """One try of the call: :class:`_EngineGone` when it met a dead engine or replica before its first answer."""
        started = False
        try:
            async for response in super()._get_response(body=body, call_method=call_method, raw_request=raw_request):
                failed = _says_engine_dead(response) or (
                    _stream_server_error(response) if started else _server_error(response)
                )
                if not started and failed and await self._engine_gone(model, several, response=response):
                    raise _EngineGone  # (a stream's first batch may already hold the dead engine's event)
                if started and failed and await self._engine_gone(model, several, response=response):
                    yield _error_event(model)  # the engine's own event says only "InternalServerError"
                    return
                started = True
                yield response
        except (ApiError, asyncio.CancelledError, GeneratorExit, _EngineGone):
            raise
        except Exception as err:
            if not await self._engine_gone(model, several, err):
                raise
            if not started:
                raise _EngineGone from err
            _LOGGER.warning("model %s: a stream was cut by the engine (%s)", model, type(err).__name__)
            yield _error_event(model)

    async def _check_engine(self, model_id: str, handle: Any) -> None:
        """The watch's check of a model's engine: one replica's answer; for a model that keeps several replicas,
        any one's of up to three tries (a try that met a dead engine makes its replica leave, and the router
        then picks another), so one dead engine does not take the model down."""
        tries = CHECK_TRIES if self._keeps_several(model_id) else 1
        for attempt in range(tries):
            try:
                await self.health_check_call(model_id, handle)
                return
            except Exception:
                if attempt == tries - 1:
                    raise
            await asyncio.sleep(FAILOVER_PAUSE_SECONDS)  # (time for the dead replica to leave)

    def _keeps_several(self, model: str) -> bool:
        """Whether ``model`` keeps more than one engine replica running (replicas, replicas_standby)."""
        info = next((m for m in self.model_infos() if m.id == model), None)
        return info is not None and keeps_several(dict(info.deployment or {}))

    async def _engine_gone(
        self, model: str, several: bool, err: BaseException | None = None, response: Any = None
    ) -> bool:
        """Whether a failure came from the model's engine or replica being gone (asked once, at most ~2 s).
        vLLM's own word for a dead engine (EngineDeadError's message) is taken at once: the replica may still
        answer its health check for a moment, and the client must get 503, not that 500. With several replicas
        one dead engine does not take the model down: the caller tries another."""
        if model not in self._model_cards:
            return False
        if (err is not None and (_replica_gone(err) or _raised_engine_dead(err))) or (
            response is not None and _says_engine_dead(response)
        ):
            if not several:
                self._watch.mark_down(model)
            return True
        return self._watch.down(model) or await self._watch.check(model) is False

    async def models(self, request: Request) -> ModelList:  # type: ignore[override]  # the route passes the request
        listing = await super().models()
        principal = principal_of(request)
        return ModelList(
            data=[
                card
                for card in listing.data
                if principal.allows(card.id) and not (self._disabled is not None and self._disabled(card.id))
            ]
        )

    async def model_data(self, model: str, request: Request) -> Any:  # type: ignore[override]  # as models
        if not principal_of(request).allows(model):
            return _api_error(ApiError(404, f"The model {echo(model)} does not exist.", "model_not_found", "model"))
        return await super().model_data(model)

    async def rerank(self, body: RerankRequest, request: Request) -> Any:
        """``POST /v1/rerank`` (Cohere/Jina shape, vLLM's own answer): the stock ingress routes score but not rerank."""
        async with router_request_timeout(DEFAULT_LLM_ROUTER_HTTP_TIMEOUT):
            result = await self._get_response(body=body, call_method="rerank", raw_request=request).__anext__()
        if isinstance(result, ErrorResponse):
            raise OpenAIHTTPException(
                message=result.error.message, status_code=result.error.code, type=result.error.type
            )
        return JSONResponse(content=result)

    async def responses(self, body: ResponsesRequest, request: Request) -> Any:
        """``POST /v1/responses`` (vLLM's own Responses API in the engine's deployment; the stock ingress has no
        route for it). Stateless: ``store`` is answered false and nothing is kept (the gate refuses
        ``previous_response_id``). A stream is the Responses event stream (``event:`` + ``data:``, no [DONE])."""
        async with router_request_timeout(DEFAULT_LLM_ROUTER_HTTP_TIMEOUT):
            first, answers = await _peek_at_generator(
                self._get_response(body=body, call_method="responses", raw_request=request)
            )
        chunk = first[0] if isinstance(first, list) and first else first
        if isinstance(chunk, ErrorResponse):
            raise OpenAIHTTPException(message=chunk.error.message, status_code=chunk.error.code, type=chunk.error.type)
        if isinstance(chunk, dict):
            return JSONResponse(content=chunk)
        return StreamingResponse(_events(answers), media_type="text/event-stream")

    async def health_live(self) -> dict[str, Any]:
        return {"status": "alive"}

    async def _pii_state(self) -> dict[str, Any] | None:
        """The PII service's state (loading, ready, failed; from Serve's status), None when masking is off."""
        return None if self._pii_health is None else (await self._pii_health.states())[PII_KEY]

    async def health_startup(self, request: Request) -> JSONResponse:
        states = await self._health.states()
        pii = await self._pii_state()
        overall = with_pii(_overall(states), pii["state"] if pii is not None else None)
        content: dict[str, Any] = {"status": overall, **_counts(s["state"] == "ready" for s in states.values())}
        if pii is not None:
            content["pii"] = pii["state"]
        if detail_allowed(request):
            content["models"] = states
            if pii is not None:
                content["pii_service"] = pii
        return JSONResponse(status_code=200 if overall == "ready" else 503, content=content)

    async def health_ready(self, request: Request) -> JSONResponse:
        self._watch.start()
        result = dict(await self._ready.get())
        for model_id in self._watch.down_models() & result.keys():  # known now; the cached probe may be older
            result[model_id] = {"ready": False, "error": "the engine is not answering (dead or restarting)"}
        pii = await self._pii_state()
        ready = bool(result) and all(r["ready"] for r in result.values()) and (pii is None or pii["state"] == READY)
        content: dict[str, Any] = {
            "status": "ready" if ready else "not_ready",
            **_counts(r["ready"] for r in result.values()),
        }
        if pii is not None:
            content["pii"] = pii["state"]
        if detail_allowed(request):
            content["models"] = result
            if pii is not None:
                content["pii_service"] = pii
        return JSONResponse(status_code=200 if ready else 503, content=content)

    async def admin_models(self) -> dict[str, Any]:
        states = await self._health.states()
        details = []
        for info in self.model_infos():
            state = states.get(info.id, {})
            details.append(
                {
                    "id": info.id,
                    "source": info.source,
                    "revision": info.revision or None,
                    "revision_pinned": bool(info.revision),
                    "state": state.get("state"),
                    "since": state.get("since"),
                    "replicas": state.get("replicas"),
                    "engine_kwargs": info.engine_kwargs,
                    "deployment": info.deployment,
                }
            )
        return {"models": details}

    async def _probe_models(self) -> dict[str, dict[str, Any]]:
        """A one-token generation on every model, concurrently, each with a timeout."""

        async def probe(model_id: str) -> tuple[str, dict[str, Any]]:
            started = time.monotonic()
            if self._watch.down(model_id):  # no generation sent to an engine known to be gone
                return model_id, {"ready": False, "error": "the engine is not answering (dead or restarting)"}
            tries = CHECK_TRIES if self._keeps_several(model_id) else 1  # (as _check_engine)
            for attempt in range(tries):
                try:
                    handle = self._get_configured_serve_handle(model_id)
                    method, request = _probe_request(model_id, self._caps.get(model_id))
                    async with asyncio.timeout(self._config.ready_timeout_seconds):
                        async for chunk in getattr(handle, method).remote(request, None):
                            first = chunk[0] if isinstance(chunk, list) else chunk
                            if getattr(first, "error", None) is not None:
                                raise RuntimeError(first.error.message)
                            break
                    return model_id, {"ready": True, "probe_ms": round((time.monotonic() - started) * 1000, 1)}
                except Exception as err:
                    if attempt == tries - 1:
                        return model_id, {"ready": False, "error": _probe_error(err)}
                await asyncio.sleep(FAILOVER_PAUSE_SECONDS)
            raise AssertionError("unreachable")  # (tries >= 1)

        results = await asyncio.gather(*(probe(mid) for mid in self._model_cards))
        return dict(results)


async def _events(answers: AsyncGenerator[Any, None]) -> AsyncGenerator[str, None]:
    """A Responses stream as text: the engine's events arrive one by one or batched in lists."""
    async for answer in answers:
        yield "".join(answer) if isinstance(answer, list) else answer


def _probe_request(model_id: str, limits: Any) -> tuple[str, Any]:
    """The smallest request of the model's kind: one generated token, one embedding or one score."""
    task = getattr(limits, "task", "generate")
    if task == "embed":
        return "embeddings", EmbeddingCompletionRequest(model=model_id, input="ping")
    if task == "score":
        return "score", ScoreRequest(model=model_id, text_1="ping", text_2="ping")
    return "completions", CompletionRequest(model=model_id, prompt="ping", max_tokens=1, stream=False)


def _counts(flags: Any) -> dict[str, int]:
    """How many models are ready, of how many: what a public health body says besides its status."""
    values = list(flags)
    return {"models_ready": sum(1 for v in values if v), "models_total": len(values)}


def _probe_error(err: BaseException) -> str:
    """A failed probe as an admin sees it: the error's first line, without terminal codes (never public)."""
    text = ANSI_CODES.sub("", str(err)).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def _overall(states: dict[str, dict[str, Any]]) -> str:
    values = {s["state"] for s in states.values()}
    if "failed" in values:
        return "failed"
    return "ready" if values == {"ready"} else "loading"


def _unavailable(model: str) -> ApiError:
    return ApiError(
        503,
        f"The model {model} is restarting; retry after {RETRY_AFTER_SECONDS} s.",
        "model_unavailable",
        headers=(("Retry-After", str(RETRY_AFTER_SECONDS)),),
    )


def _error_event(model: str) -> str:
    """The SSE event that ends a stream the engine's crash cut (OpenAI's clients raise it as an APIError)."""
    error = json.loads(_unavailable(model).body())
    return f"data: {json.dumps(error)}\n\n"


def _server_error(response: Any) -> bool:
    """A first chunk that is an engine's 5xx error (vLLM answers EngineDeadError as a 500 ErrorResponse)."""
    first = response[0] if isinstance(response, list) and response else response
    return isinstance(first, ErrorResponse) and int(first.error.code or 500) >= 500


def _stream_server_error(response: Any) -> bool:
    """A stream chunk (SSE text, or a batch of them) carrying an engine's 5xx error event."""
    texts = response if isinstance(response, list) else [response]
    for text in texts:
        if not isinstance(text, str) or '"error"' not in text:
            continue
        for event in text.split("\n\n"):
            data = event.strip()
            if not data.startswith("data:"):
                continue
            try:
                error = json.loads(data[5:]).get("error")
            except (ValueError, AttributeError):
                continue
            if isinstance(error, dict) and isinstance(error.get("code"), int) and error["code"] >= 500:
                return True
    return False


ENGINE_DEAD_MESSAGE = "EngineCore encountered an issue"  # vllm.v1.engine.exceptions.EngineDeadError's message


def _says_engine_dead(response: Any) -> bool:
    """An engine error (an ErrorResponse, or SSE text with an error event) that is vLLM's EngineDeadError."""
    for item in response if isinstance(response, list) else [response]:
        text = item.error.message if isinstance(item, ErrorResponse) else item if isinstance(item, str) else ""
        if ENGINE_DEAD_MESSAGE in (text or ""):
            return True
    return False


def _raised_engine_dead(err: BaseException) -> bool:
    """vLLM's EngineDeadError raised through Serve (a request the replica took as its engine died)."""
    return type(err).__name__ == "EngineDeadError" or ENGINE_DEAD_MESSAGE in str(err)


def _replica_gone(err: BaseException) -> bool:
    """Ray's word for a replica that died or cannot be reached, or Serve's for a deployment without one."""
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import DeploymentUnavailableError

    return isinstance(err, (RayActorError, DeploymentUnavailableError))


def _api_error(err: ApiError) -> JSONResponse:
    return JSONResponse(status_code=err.status, content=json.loads(err.body()), headers=dict(err.headers))


def make_ingress_class(config: IngressConfig) -> type:
    """The Serve ingress class: ApplianceIngress's routes on a FastAPI app with the gate in front."""
    cls: type = make_fastapi_ingress(ApplianceIngress, endpoint_map=ENDPOINTS, app=build_fastapi_app(config))
    return cls
