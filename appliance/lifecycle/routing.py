"""What routing reads from the registry: which models are disabled (the gate answers 404 for them).

For the ingress (``appliance/serve/gate.py`` is where the hook goes): ``DisabledModels.is_disabled(model_id)``
costs a dict lookup; the registry is read again at most every ``ttl_s`` seconds. When the registry cannot be
read, the last answer stands (logged once per failure streak): a broken registry never disables a model, and
never enables one that was disabled. No registry at all (never deployed, or its file removed): nothing is disabled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from appliance.errors import ApplianceError
from appliance.registry.states import Environment, Status
from appliance.registry.store import RegistryStore

_LOGGER = logging.getLogger(__name__)


class DisabledModels:
    def __init__(
        self,
        store: RegistryStore,
        *,
        environment: Environment = Environment.PRODUCTION,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.environment = environment
        self.ttl_s = ttl_s
        self.clock = clock
        self._disabled: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._failing = False

    def is_disabled(self, model_id: str) -> bool:
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.ttl_s:
            self._refresh(now)
        return model_id in self._disabled

    def _refresh(self, now: float) -> None:
        self._read_at = now
        try:
            if not self.store.ready():
                self._disabled = frozenset()
                return
            current = self.store.current()
        except ApplianceError as err:
            if not self._failing:
                _LOGGER.warning("model registry unreadable, keeping the last known disabled models: %s", err)
            self._failing = True
            return
        self._failing = False
        self._disabled = frozenset(
            e.model_id for e in current if e.environment is self.environment and e.status is Status.DISABLED
        )


class ServingRoutes:
    """Which Ray Serve deployment answers each model (the registry's production routes), read at most every
    ``ttl_s`` seconds; the last answer stands while the registry cannot be read (a broken registry never moves
    traffic). No registry or no route: None (the deployment the application was built with)."""

    def __init__(
        self,
        store: RegistryStore,
        *,
        environment: Environment = Environment.PRODUCTION,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.environment = environment
        self.ttl_s = ttl_s
        self.clock = clock
        self._routes: dict[str, str] = {}
        self._read_at: float | None = None
        self._failing = False

    def deployment(self, model_id: str) -> str | None:
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.ttl_s:
            self._refresh(now)
        return self._routes.get(model_id)

    def _refresh(self, now: float) -> None:
        self._read_at = now
        try:
            if not self.store.ready():
                self._routes = {}
                return
            routes = self.store.routes(self.environment)
        except ApplianceError as err:
            if not self._failing:
                _LOGGER.warning("model registry unreadable, keeping the last known routes: %s", err)
            self._failing = True
            return
        self._failing = False
        self._routes = {model_id: route.deployment for (model_id, _env), route in routes.items() if route.deployment}
