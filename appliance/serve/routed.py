"""The ingress side of model changes: each model's requests go to the deployment the registry's route names
(:class:`appliance.lifecycle.routing.ServingRoutes`, read at most once a second), so a new generation takes
traffic the moment its switch is recorded, and the one before drains. Without a registry, or for a model
whose route names the deployment the application was built with, nothing changes: ray.serve.llm's own handle.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from typing import Any

from appliance.errors import ApplianceError

_LOGGER = logging.getLogger(__name__)


class RoutedGenerations:
    """Mixin for the ingress (before ``OpenAiIngress`` in its bases)."""

    _routes: Any = None
    _built_with: dict[str, str]
    deployment_names: dict[str, str]  # model id → the deployment serving it now (shared with ModelHealth)
    _routed_handles: dict[str, Any]

    def _init_routes(self, registry_url: str | None, llm_deployments: Mapping[str, Any]) -> None:
        self._built_with = {mid: handle.deployment_name for mid, handle in llm_deployments.items()}
        self.deployment_names = dict(self._built_with)
        self._routed_handles = {}
        if not registry_url:
            return
        from appliance.lifecycle.routing import ServingRoutes
        from appliance.registry.store import RegistryStore

        try:
            self._routes = ServingRoutes(RegistryStore.open(registry_url), ttl_s=1.0)
        except ApplianceError as err:
            _LOGGER.warning("model registry not consulted (requests go to the deployments built with): %s", err)

    def _routed(self, model_id: str) -> str | None:
        """The deployment the registry routes ``model_id`` to, when it is not the one built with."""
        if self._routes is None or model_id not in self._built_with:
            return None
        name: str | None = self._routes.deployment(model_id)
        if name is None or name == self._built_with[model_id]:
            self.deployment_names[model_id] = self._built_with[model_id]
            return None
        self.deployment_names[model_id] = name
        return name

    def _handle_for(self, name: str, *, stream: bool) -> Any:
        from ray import serve

        key = f"{name}|{stream}"
        if key not in self._routed_handles:
            handle = serve.get_deployment_handle(name, app_name=serve.get_replica_context().app_name)
            self._routed_handles[key] = handle.options(stream=True) if stream else handle
        return self._routed_handles[key]

    def _get_configured_serve_handle(self, model_id: str) -> Any:
        name = self._routed(model_id)
        if name is None:
            return super()._get_configured_serve_handle(model_id)  # type: ignore[misc]
        return self._handle_for(name, stream=True)

    def health_check_call(self, model_id: str, default: Any) -> Awaitable[Any]:
        """The engine health check of the generation serving ``model_id`` (``default``: the built-with handle)."""
        name = self._routed(model_id)
        call: Awaitable[Any] = (default if name is None else self._handle_for(name, stream=False)).check_health.remote()
        return call
