"""Turning one change request (deploy, promote, rollback) into a plan and applying it: what the serve head runs
for each request it claims. Validation (the models.yaml of the request, with the head's own settings) and the
integrity check come first; the plan is pure (:mod:`appliance.lifecycle.plan`); the executor acts.

A staging deploy runs the whole pipeline (verify, load beside production, smoke test) on the new revision,
records it ready in staging, then stops it to give its resources back: ``promote`` starts exactly that revision
(same weights digest, same engine arguments) in production.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from appliance.config.loader import ApplianceConfig, load_config
from appliance.config.models import ModelSpec
from appliance.config.settings import Accelerator
from appliance.errors import ApplianceError, ConfigError
from appliance.lifecycle.apply import Executor, Outcome, ServePort
from appliance.lifecycle.deploys import engine_args_digest
from appliance.lifecycle.integrity import IntegrityError, ModelToVerify, verify_model
from appliance.lifecycle.manifest import ManifestStore
from appliance.lifecycle.plan import Need, Plan, Serving, Wanted, plan_deploy, plan_promote, plan_rollback
from appliance.registry.requests import ChangeRequest
from appliance.registry.states import Environment, Status
from appliance.registry.store import RegistryStore, timestamp

_LOGGER = logging.getLogger(__name__)


class Port(ServePort, Protocol):
    def free(self) -> Need: ...

    def running(self, deployment: str) -> bool: ...  # Serve calls it healthy now

    def exists(self, deployment: str) -> bool: ...  # Serve has it, in whatever state


def need_of(spec: ModelSpec, accelerator: Accelerator) -> Need:
    """Pure: what one generation of ``spec`` takes from Ray, counted at its starting number of replicas: on CPU
    two logical CPUs per replica (the engine's bundle, ``{"CPU": 1}``, plus the replica actor's own CPU, which
    ray.serve.llm adds to the first bundle: seen as ``{'CPU': 2.0}`` in its deployment options); on GPU the
    GPUs of one replica (tensor × pipeline parallel)."""
    replicas = max(spec.starting_replicas, 1)
    if accelerator is Accelerator.CPU:
        return Need(float(2 * replicas), 0.0)
    return Need(0.0, float(replicas * spec.gpus_per_replica))


@dataclass
class ChangeApplier:
    config: ApplianceConfig  # the head's (its settings and the models it started with)
    store: RegistryStore
    port: Port
    events: Any = None
    ready_timeout_s: float = 600.0
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    hub_cache: Path | None = None

    def handle(self, request: ChangeRequest) -> dict[str, Any]:
        """The request's result (JSON): ``ok``, the plan, each model's outcome; never raises an ApplianceError."""
        try:
            plan = self.plan(request)
        except ApplianceError as err:
            return {"ok": False, "reason": f"refused before anything started: {err}", "plan": None, "outcomes": []}
        outcomes = Executor(
            self.store, self.port, events=self.events, ready_timeout_s=self.ready_timeout_s, clock=self.clock
        ).apply(plan)
        if plan.environment is Environment.STAGING:
            self._stop_staged(outcomes)
        ok = all(o.ok for o in outcomes) and bool(outcomes)
        return {
            "ok": ok,
            "plan": plan.to_json(),
            "outcomes": [o.to_json() for o in outcomes],
            "reason": "; ".join(f"{o.model_id}: {o.reason}" for o in outcomes if not o.ok),
        }

    # --- planning ---------------------------------------------------------------------------------------
    def plan(self, request: ChangeRequest) -> Plan:
        env = request.environment
        self.settle_started()
        free = self.port.free()
        if request.kind == "deploy":
            models = self._models_of(request.payload.get("models_yaml"))
            serving = self.serving(env)
            if env is Environment.PRODUCTION:  # a route left by a model `make up` dropped is not serving
                serving = {m: s for m, s in serving.items() if self.port.exists(s.deployment)}
            return plan_deploy(env, [self._wanted(spec) for spec in models], serving, free)
        model_id = request.model_id
        spec = self.config.model(model_id) or self._served_spec(model_id)  # (a model added since the start)
        if spec is None:
            raise ApplianceError(
                f"expected a model of the running configuration, found {model_id!r} "
                "(a removed model's history stays; to serve it again, add it to models.yaml and run models deploy)"
            )
        need = need_of(spec, self.config.accelerator)
        if request.kind == "promote":
            staged = self.serving(Environment.STAGING).get(model_id)
            entry = staged.entry if staged else None
            return plan_promote(
                model_id,
                entry,
                self.store.spec(entry.id) if entry else None,
                self.serving(Environment.PRODUCTION).get(model_id),
                need,
                free,
            )
        if request.kind == "rollback":
            entries = self.store.entries(model_id)
            specs = {e.id: s for e in entries if (s := self.store.spec(e.id)) is not None}
            return plan_rollback(
                model_id,
                env,
                entries,
                self.store.history(model_id),
                specs,
                self.serving(env).get(model_id),
                need,
                free,
                to=request.payload.get("to"),
            )
        raise ApplianceError(f"expected a deploy, promote or rollback request, found {request.kind!r}")

    def settle_started(self) -> None:
        """A generation `serve` started and left ``loading`` (a plain `serve` returns at once) that Serve now
        calls healthy is recorded ready: it is what serves, and a later rollback may come back to it."""
        for serving in self.serving(Environment.PRODUCTION).values():
            if serving.entry.status is Status.LOADING and self.port.running(serving.deployment):
                self.store.transition(
                    serving.entry.id,
                    Status.READY,
                    reason="running (seen by the model change applier)",
                    now=self.clock(),
                )

    def serving(self, environment: Environment) -> dict[str, Serving]:
        serving = {}
        for (model_id, _env), route in self.store.routes(environment).items():
            entry = self.store.entry(route.entry_id)
            if entry is not None:
                serving[model_id] = Serving(entry, route.deployment)
        return serving

    def _served_spec(self, model_id: str) -> ModelSpec | None:
        """The spec of the generation production routes ``model_id`` to (a model added by a deploy)."""
        route = self.store.routes(Environment.PRODUCTION).get((model_id, Environment.PRODUCTION))
        spec = self.store.spec(route.entry_id) if route is not None else None
        return ModelSpec.model_validate(spec) if spec is not None else None

    def _models_of(self, text: object) -> tuple[ModelSpec, ...]:
        """The request's models.yaml, validated with the head's own settings (every error, file:key style)."""
        if not isinstance(text, str) or not text.strip():
            raise ApplianceError("expected the models.yaml text in the deploy request, found none")
        with tempfile.TemporaryDirectory(prefix="appliance-deploy-") as tmp:
            path = Path(tmp) / "models.yaml"
            path.write_text(text)
            files = replace(self.config.files, models=path, models_required=True)
            try:
                config = load_config(files, gpu_count=self.config.gpu_count)
            except ConfigError as err:  # named as the operator knows it, not by the temporary copy
                issues = "; ".join(
                    issue.render().replace(str(path), "models.yaml (of the request)")
                    for issue in err.issues
                    if issue.is_error
                )
                raise ApplianceError(f"{err}: {issues}") from None
        return config.models

    def _wanted(self, spec: ModelSpec) -> Wanted:
        from appliance.serve.builder import engine_kwargs

        digest = engine_args_digest(engine_kwargs(spec))
        need = need_of(spec, self.config.accelerator)
        data = spec.model_dump(mode="json")
        manifests = ManifestStore(Path(self.config.settings.registry_manifest_dir))
        try:
            verified = verify_model(
                ModelToVerify(spec.id, spec.source, spec.revision, spec.allow_pickle_weights),
                manifests,
                now=timestamp(self.clock()),
                hub_cache=self.hub_cache,
            )
        except IntegrityError as err:
            why = "; ".join(reason for _model, reason in err.failures)
            return Wanted(spec.id, spec.source, spec.revision or "", "", digest, data, need, refused=why)
        return Wanted(
            spec.id, spec.source, verified.revision or spec.revision or "", verified.manifest_digest, digest, data, need
        )

    def _stop_staged(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.ok and outcome.action != "keep" and outcome.entry_id is not None:
                route = self.store.routes(Environment.STAGING).get((outcome.model_id, Environment.STAGING))
                if route is not None:
                    try:
                        self.port.stop(route.deployment)
                    except ApplianceError as err:
                        _LOGGER.warning("staging generation %s not stopped: %s", route.deployment, err)
