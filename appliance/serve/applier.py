"""The serve head's loop that applies model changes: claim the oldest queued request in the registry, plan it
and apply it through :class:`~appliance.serve.lifecycle_port.RayServePort`, record the outcome; one at a time.

It is the only writer of Serve's application after the start, so changes never race each other. A request left
``running`` by a process that died is failed at the loop's start (its entries are failed by the executor's
next pass over them). The application's generations are read back from the registry's routes and specs, so a
loop started by another process (``serve --attach``) continues where the last one stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.config.loader import ApplianceConfig
from appliance.config.models import ModelSpec
from appliance.errors import ApplianceError
from appliance.lifecycle.served import record_of, write_record
from appliance.registry.requests import ChangeRequests
from appliance.registry.states import Environment
from appliance.registry.store import RegistryStore
from appliance.serve.generations import Generations, default_deployment

_LOGGER = logging.getLogger(__name__)
POLL_S = 1.0


def generations_from_registry(store: RegistryStore, config: ApplianceConfig) -> Generations:
    """The serving generation of every model whose production route left the deployment serve built."""
    generations = Generations()
    configured = {spec.id for spec in config.models}
    for (model_id, _env), route in store.routes(Environment.PRODUCTION).items():
        if model_id not in configured or not route.deployment or route.deployment == default_deployment(model_id):
            continue
        spec = store.spec(route.entry_id)
        if spec is not None:
            generations.serving[model_id] = (route.deployment, ModelSpec.model_validate(spec))
    return generations


def served_models(config: ApplianceConfig, generations: Generations) -> list[ModelSpec]:
    """Every model production serves, as it serves it: the configuration's order (a model a change switched, or
    rolled back, with the spec of its serving generation; one a deploy removed is not), then the models added
    since."""
    removed = generations.removed
    models = [
        generations.serving[spec.id][1] if spec.id in generations.serving else spec
        for spec in config.models
        if spec.id not in removed
    ]
    models += [spec for model_id, (_d, spec) in generations.added(config).items() if config.model(model_id) is None]
    return models


def record_served(served: tuple[Path, str], config: ApplianceConfig, generations: Generations) -> None:
    """What production serves now, for a restart under the same configuration (appliance.lifecycle.served)."""
    path, base = served
    try:
        write_record(path, record_of(base, served_models(config, generations)))
    except OSError as err:  # serving goes on; a restart would serve the configured models
        _LOGGER.warning("model changes: %s not written (%s): a restart serves the configured models", path, err)


def run_applier(
    config: ApplianceConfig,
    serve: Any,
    app_name: str,
    run: Callable[[Generations], None],
    stop: threading.Event,
    *,
    events: Any = None,
    poll_s: float = POLL_S,
    served: tuple[Path, str] | None = None,
) -> None:
    """Apply queued change requests until ``stop`` is set (the head's thread, or ``serve --attach``). ``served``:
    where to record what production serves after each request, and the configuration's digest (the head's)."""
    from appliance.lifecycle.changes import ChangeApplier
    from appliance.serve.lifecycle_port import RayServePort

    try:
        store = RegistryStore.open(config.settings.registry_url)
        store.migrate()
        requests = ChangeRequests(store)
        left = requests.abandon_running(reason="the serve process restarted while applying it", now=datetime.now(UTC))
        if left:
            _LOGGER.warning("model changes: %d request(s) left running by an earlier process marked failed", left)
        generations = generations_from_registry(store, config)
    except ApplianceError as err:
        _LOGGER.warning("model changes are not applied (the registry is unavailable): %s", err)
        return
    port = RayServePort(serve, config, generations, run, app_name)
    applier = ChangeApplier(config, store, port, events=events)
    _LOGGER.info("model changes: waiting for requests (python -m appliance models deploy|promote|rollback)")
    while not stop.is_set():
        try:
            request = requests.claim(now=datetime.now(UTC))
        except ApplianceError as err:
            _LOGGER.warning("model changes: the registry cannot be read: %s", err)
            stop.wait(poll_s * 5)
            continue
        if request is None:
            stop.wait(poll_s)
            continue
        _LOGGER.info(
            "model changes: applying request %d (%s %s)",
            request.id,
            request.kind,
            request.model_id or request.environment.value,
        )
        try:
            result = applier.handle(request)
        except Exception as err:  # the loop's boundary: the request fails with the reason, the loop goes on
            _LOGGER.exception("model changes: request %d failed unexpectedly", request.id)
            result = {"ok": False, "reason": f"internal error: {type(err).__name__}", "outcomes": []}
        if served is not None:  # (the port's generations change only inside handle(): this loop's thread)
            record_served(served, config, port.generations)
        try:
            requests.finish(request.id, ok=bool(result.get("ok")), result=result, now=datetime.now(UTC))
        except ApplianceError as err:
            _LOGGER.warning("model changes: the outcome of request %d was not recorded: %s", request.id, err)
