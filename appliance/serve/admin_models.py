"""``/admin/models/...``: the model lifecycle over the API, for admin keys only (the gate checks the role).

A change (deploy, promote, rollback) is queued in the registry exactly as ``python -m appliance models`` queues
it and answered ``202`` with the request; the serve head applies it (minutes: a model loads), and
``GET /admin/models/requests/{id}`` tells its outcome. ``enable``/``disable`` take effect at once (the ingress
reads the registry every second); ``history`` lists a model's state changes. Errors are OpenAI-shaped with the
right status (400 bad body, 404 unknown model or request, 409 refused transition, 503 no registry).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from appliance.errors import ApplianceError
from appliance.serve.checks import echo
from appliance.serve.errors import ApiError

# name → (method, path): merged into the gate's routes (appliance.serve.gate.ROUTES); every one needs an admin key
ADMIN_MODEL_ROUTES: dict[str, tuple[str, str]] = {
    "admin_model_deploy": ("POST", "/admin/models/deploy"),
    "admin_model_request": ("GET", "/admin/models/requests/{request_id}"),
    "admin_model_promote": ("POST", "/admin/models/{model}/promote"),
    "admin_model_rollback": ("POST", "/admin/models/{model}/rollback"),
    "admin_model_enable": ("POST", "/admin/models/{model}/enable"),
    "admin_model_disable": ("POST", "/admin/models/{model}/disable"),
    "admin_model_history": ("GET", "/admin/models/{model}/history"),
}
MAX_HISTORY = 200


class AdminModels:
    """Mixin for the ingress: its ``_config`` (IngressConfig) names the registry and the configured models."""

    _config: Any

    def model_infos(self) -> tuple[Any, ...]:
        """The models the ingress serves (the ingress adds those added to the running application)."""
        return tuple(self._config.models)

    def _store(self) -> Any:
        from appliance.registry.store import RegistryStore

        if not self._config.registry_url:
            raise ApiError(503, "The model registry is not configured (REGISTRY_URL).", "registry_unavailable")
        return RegistryStore.open(self._config.registry_url)

    async def _known(self, model: str) -> str:
        """``model`` when served; else 404, saying how to serve it again when the registry remembers it (a removed
        model). The registry is read off the event loop, and only for a model not served."""
        if self._served(model):
            return model
        if await asyncio.to_thread(self._recorded, model):  # (a recorded id: safe to repeat in the message)
            raise ApiError(
                404,
                f"The model {echo(model)} is not served now (removed; its history: /admin/models/{model}/history). "
                "To serve it again, add it to models.yaml and deploy.",
                "model_not_found",
                "model",
            )
        raise _no_such_model(model)

    def _served(self, model: str) -> bool:
        return model in {info.id for info in self.model_infos()}

    def _recorded(self, model: str) -> bool:
        """Whether the registry has any history for ``model`` (False without a registry, or one unreachable)."""
        if not self._config.registry_url:
            return False
        try:
            store = self._store()
            return store.ready() and bool(store.history(model))
        except ApplianceError:  # an unreachable registry: the model is simply unknown here
            return False

    async def admin_model_deploy(self, request: Request) -> JSONResponse:
        body = await _body(request)
        environment = _environment(body.get("environment", "production"))
        text = body.get("models_yaml")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(
                400, "Expected 'models_yaml': the text of a models.yaml to apply.", "invalid_parameter", "models_yaml"
            )
        return await self._queue("deploy", environment, {"models_yaml": text}, "")

    async def admin_model_promote(self, model: str, request: Request) -> JSONResponse:
        return await self._queue("promote", "production", {}, await self._known(model))

    async def admin_model_rollback(self, model: str, request: Request) -> JSONResponse:
        body = await _body(request)
        to = body.get("to")
        if to is not None and (not isinstance(to, int) or isinstance(to, bool) or to < 1):
            raise ApiError(400, "Expected 'to': a registry entry id (a positive integer).", "invalid_parameter", "to")
        environment = _environment(body.get("environment", "production"))
        return await self._queue("rollback", environment, {"to": to}, await self._known(model))

    async def admin_model_enable(self, model: str, request: Request) -> JSONResponse:
        return await self._switch(await self._known(model), enable=True, body=await _body(request))

    async def admin_model_disable(self, model: str, request: Request) -> JSONResponse:
        return await self._switch(await self._known(model), enable=False, body=await _body(request))

    async def admin_model_history(self, model: str) -> dict[str, Any]:
        if not self._served(model) and not await asyncio.to_thread(self._recorded, model):
            raise _no_such_model(model)  # (a removed model's history stays readable)
        events = await asyncio.to_thread(_registry_call, lambda: self._store().history(model))
        return {"model": model, "history": [e.to_json() for e in events[-MAX_HISTORY:]]}

    async def admin_model_request(self, request_id: str) -> dict[str, Any]:
        from appliance.registry.requests import ChangeRequests

        if not request_id.isdigit():
            raise ApiError(404, "No such change request.", "request_not_found")
        found = await asyncio.to_thread(_registry_call, lambda: ChangeRequests(self._store()).get(int(request_id)))
        if found is None:
            raise ApiError(404, "No such change request.", "request_not_found")
        return {"request": found.to_json()}

    async def _queue(self, kind: str, environment: str, payload: dict[str, Any], model: str) -> JSONResponse:
        from appliance.registry.requests import ChangeRequests
        from appliance.registry.states import Environment

        def submit() -> Any:
            store = self._store()
            store.migrate()
            return ChangeRequests(store).submit(
                kind, Environment(environment), payload, model_id=model, requested_by="admin-api", now=datetime.now(UTC)
            )

        queued = await asyncio.to_thread(_registry_call, submit)
        return JSONResponse(
            status_code=202, content={"request": queued.to_json(), "poll": f"/admin/models/requests/{queued.id}"}
        )

    async def _switch(self, model: str, *, enable: bool, body: dict[str, Any]) -> JSONResponse:
        from appliance.registry.states import Environment, Status

        environment = Environment(_environment(body.get("environment", "production")))
        why = body.get("reason", "")
        if not isinstance(why, str) or len(why) > 200:
            raise ApiError(400, "Expected 'reason': text of at most 200 characters.", "invalid_parameter", "reason")
        action = "enabled" if enable else "disabled"
        reason = f"{action} by an admin key over the API" + (f": {why}" if why else "")

        def change() -> Any:
            store = self._store()
            current = [e for e in store.current(model) if e.environment is environment] if store.ready() else []
            if not current:
                raise ApiError(
                    404,
                    f"The model {echo(model)} has no {environment.value} revision in the registry.",
                    "model_not_found",
                    "model",
                )
            return store.transition(
                current[0].id, Status.READY if enable else Status.DISABLED, reason=reason, now=datetime.now(UTC)
            )

        entry = await asyncio.to_thread(_registry_call, change)
        return JSONResponse(status_code=200, content={"entry": entry.to_json()})


def _no_such_model(model: str) -> ApiError:
    return ApiError(404, f"The model {echo(model)} does not exist.", "model_not_found", "model")


def _registry_call(call: Any) -> Any:
    """A registry call from a route: a refused transition is 409, an unreachable registry 503 (no internals)."""
    from appliance.registry.store import TransitionRefused

    try:
        return call()
    except TransitionRefused as err:
        raise ApiError(409, f"Refused: {str(err).split(': ', 1)[-1]}.", "transition_refused") from None
    except ApiError:
        raise
    except ApplianceError:
        raise ApiError(
            503,
            "The model registry cannot be reached; retry later.",
            "registry_unavailable",
            headers=(("Retry-After", "5"),),
        ) from None


def _environment(value: object) -> str:
    if value not in ("production", "staging"):
        raise ApiError(400, "Expected 'environment': production or staging.", "invalid_parameter", "environment")
    return str(value)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "Expected a JSON object as the body.", "invalid_body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Expected a JSON object as the body.", "invalid_body")
    return body
