"""The appliance ingress: ray.serve.llm's OpenAI ingress, with the gate in front and the appliance's routes.

The OpenAI protocol (chat, completions, models) is ray.serve.llm's own ``OpenAiIngress``; this subclass adds
per-key filtering of ``/v1/models``, the health probes and the admin endpoint. Auth, request checks,
audit and metrics live in :class:`appliance.serve.gate.Gate`, an ASGI middleware around the whole app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.llm._internal.serve.core.configs.openai_api_models import CompletionRequest, ModelList
from ray.llm._internal.serve.core.ingress.middleware import add_exception_handling_middleware
from ray.serve.llm.ingress import OpenAiIngress, make_fastapi_ingress

from appliance.serve.audit import AuditLog
from appliance.serve.checks import Principal, echo
from appliance.serve.errors import ApiError, error_body
from appliance.serve.gate import DETAIL_STATE, PRINCIPAL_STATE, ROUTES, Gate, GateSettings
from appliance.serve.health import ModelHealth, ReadyCache
from appliance.serve.ingress_config import IngressConfig
from appliance.serve.keystore import KeyStore
from appliance.serve.metrics import RayMetrics
from appliance.serve.pii.bookend import make_bookend

_LOGGER = logging.getLogger(__name__)

ENDPOINTS = {name: (lambda app, m=method, p=path: getattr(app, m.lower())(p)) for name, (method, path) in ROUTES.items()}


class GateMiddleware(Gate):
    """The gate, built inside the replica from plain config (the FastAPI app is pickled to replicas)."""

    def __init__(self, app: Any, config: IngressConfig) -> None:
        keys = KeyStore(config.keys, Path(config.secrets_path) if config.secrets_path else None)
        settings = GateSettings(config.auth_enabled, config.max_body_bytes, dict(config.caps), config.audit_prompts)
        bookend = make_bookend(config.pii) if config.pii is not None else None
        super().__init__(app, settings, keys, AuditLog(Path(config.audit_path)), RayMetrics(), bookend)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = f"Invalid request: {first.get('msg', 'invalid body')}" + (f" at '{param}'" if param else "")
    return JSONResponse(status_code=400, content=json.loads(error_body(400, message, "invalid_parameter", param)))


def build_fastapi_app(config: IngressConfig) -> FastAPI:
    app = FastAPI(title="LLM appliance", docs_url=None, redoc_url=None, openapi_url=None)
    add_exception_handling_middleware(app)
    app.add_exception_handler(RequestValidationError, _validation_error)
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


class ApplianceIngress(OpenAiIngress):
    def __init__(self, llm_deployments: dict, model_cards: dict, *, ingress_config: IngressConfig,
                 pii_service: Any = None, **kwargs: Any):  # fmt: skip
        # pii_service: the PIIService handle; bound here so Serve deploys it, called by name from the gate
        super().__init__(llm_deployments, model_cards, **kwargs)
        self._config = ingress_config
        self._started = time.time()
        self._health = ModelHealth({mid: handle.deployment_name for mid, handle in llm_deployments.items()})
        self._ready = ReadyCache(self._probe_models, ttl=ingress_config.ready_cache_seconds)

    async def models(self, request: Request) -> ModelList:
        listing = await super().models()
        principal = principal_of(request)
        return ModelList(data=[card for card in listing.data if principal.allows(card.id)])

    async def model_data(self, model: str, request: Request) -> Any:
        if not principal_of(request).allows(model):
            return _api_error(ApiError(404, f"The model {echo(model)} does not exist.", "model_not_found", "model"))
        return await super().model_data(model)

    async def health_live(self) -> dict[str, Any]:
        return {"status": "alive"}

    async def health_startup(self, request: Request) -> JSONResponse:
        states = await self._health.states()
        overall = _overall(states)
        content: dict[str, Any] = {"status": overall, **_counts(s["state"] == "ready" for s in states.values())}
        if detail_allowed(request):
            content["models"] = states
        return JSONResponse(status_code=200 if overall == "ready" else 503, content=content)

    async def health_ready(self, request: Request) -> JSONResponse:
        result = await self._ready.get()
        ready = bool(result) and all(r["ready"] for r in result.values())
        content: dict[str, Any] = {"status": "ready" if ready else "not_ready",
                                   **_counts(r["ready"] for r in result.values())}  # fmt: skip
        if detail_allowed(request):
            content["models"] = result
        return JSONResponse(status_code=200 if ready else 503, content=content)

    async def admin_models(self) -> dict[str, Any]:
        states = await self._health.states()
        details = []
        for info in self._config.models:
            state = states.get(info.id, {})
            details.append({
                "id": info.id, "source": info.source, "revision": info.revision or None,
                "revision_pinned": bool(info.revision), "state": state.get("state"), "since": state.get("since"),
                "replicas": state.get("replicas"), "engine_kwargs": info.engine_kwargs, "deployment": info.deployment,
            })  # fmt: skip
        return {"models": details}

    async def _probe_models(self) -> dict[str, dict[str, Any]]:
        """A one-token generation on every model, concurrently, each with a timeout."""

        async def probe(model_id: str) -> tuple[str, dict[str, Any]]:
            started = time.monotonic()
            try:
                handle = self._get_configured_serve_handle(model_id)
                request = CompletionRequest(model=model_id, prompt="ping", max_tokens=1, stream=False)
                async with asyncio.timeout(self._config.ready_timeout_seconds):
                    async for chunk in handle.completions.remote(request, None):
                        first = chunk[0] if isinstance(chunk, list) else chunk
                        if getattr(first, "error", None) is not None:
                            raise RuntimeError(first.error.message)
                        break
                return model_id, {"ready": True, "probe_ms": round((time.monotonic() - started) * 1000, 1)}
            except Exception as err:  # noqa: BLE001 - a probe reports any failure as not ready
                return model_id, {"ready": False, "error": _probe_error(err)}

        results = await asyncio.gather(*(probe(mid) for mid in self._model_cards))
        return dict(results)


def _counts(flags: Any) -> dict[str, int]:
    """How many models are ready, of how many: what a public health body says besides its status."""
    values = list(flags)
    return {"models_ready": sum(1 for v in values if v), "models_total": len(values)}


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _probe_error(err: BaseException) -> str:
    """A failed probe as an admin sees it: the error's first line, without terminal codes (never public)."""
    text = _ANSI.sub("", str(err)).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def _overall(states: dict[str, dict[str, Any]]) -> str:
    values = {s["state"] for s in states.values()}
    if "failed" in values:
        return "failed"
    return "ready" if values == {"ready"} else "loading"


def _api_error(err: ApiError) -> JSONResponse:
    return JSONResponse(status_code=err.status, content=json.loads(err.body()), headers=dict(err.headers))


def make_ingress_class(config: IngressConfig) -> type:
    """The Serve ingress class: ApplianceIngress's routes on a FastAPI app with the gate in front."""
    return make_fastapi_ingress(ApplianceIngress, endpoint_map=ENDPOINTS, app=build_fastapi_app(config))


