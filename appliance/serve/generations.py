"""Generations of a model inside the one Serve application: which deployment serves each model, which new ones
start beside it, and versions that keep every deployment a change does not touch exactly as it runs.

Ray Serve gives a deployment without a version a random one on every ``serve.run``, which restarts it. Here each
engine deployment's version is a digest of what it is started with (its ``LLMConfig`` and its name), and the
ingress keeps the version it started with, so applying the application again restarts only what changed.
A generation started by a change is its own deployment (``LLMServer:<model>@<entry>``): it loads and is smoke
tested beside the serving one, and the ingress switches to it by name when the registry's route moves. A model
the configuration does not name (added to the running application in production) is served the same way; the
ingress learns it through its user_config (appliance.serve.live_models).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from appliance.config.models import ModelSpec

if TYPE_CHECKING:
    from ray.serve.deployment import Application

    from appliance.config.loader import ApplianceConfig

DEFAULT_PREFIX = "LLMServer:"
INGRESS_NAME = "ApplianceIngress"  # the ingress deployment's name


def default_deployment(model_id: str) -> str:
    """The deployment ``serve`` starts for a model (ray.serve.llm's naming, with the appliance's prefix)."""
    return DEFAULT_PREFIX + model_id.replace("/", "--").replace(".", "_")


def generation_deployment(model_id: str, entry_id: int) -> str:
    """The deployment of the generation a change starts (registry entry ``entry_id``)."""
    return f"{default_deployment(model_id)}@{entry_id}"


def deployment_version(name: str, llm_config: Mapping[str, Any]) -> str:
    """Pure: the same name and LLMConfig give the same version (Serve then leaves the deployment running)."""
    canonical = json.dumps({"name": name, "llm_config": llm_config}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass
class Generations:
    """What the application holds besides models.yaml: the serving generation of each changed model and the
    generations starting beside. Mutated by the serve head's port only; read when the application is built."""

    ingress_version: str = ""  # "" until the first build pins the ingress to its configuration's digest
    serving: dict[str, tuple[str, ModelSpec]] = field(default_factory=dict)  # model id → (deployment, spec)
    beside: dict[str, tuple[str, ModelSpec]] = field(default_factory=dict)  # deployment → (model id, spec)
    # models the ingress was told to drop since the start (a deploy whose models.yaml no longer names them); one
    # deployed again later is served as an added model (the running ingress learns it the same way)
    dropped: set[str] = field(default_factory=set)

    def spec_of(self, model_id: str, config: ApplianceConfig) -> tuple[str, ModelSpec | None]:
        if model_id in self.serving:
            return self.serving[model_id]
        return default_deployment(model_id), config.model(model_id)

    def apply(
        self, deployments: dict[str, Application], config: ApplianceConfig
    ) -> tuple[dict[str, Application], dict[str, Application]]:
        """The engine deployments with their serving names and pinned versions, and those starting beside."""
        serving = {}
        for model_id, default_app in deployments.items():
            if model_id in self.removed:
                continue  # its engine is stopped (or drains beside, until the ingress has dropped it)
            name, spec = self.spec_of(model_id, config)
            serving[model_id] = (
                _engine(name, spec, config)
                if spec is not None and model_id in self.serving
                else (_pinned(default_app, name, spec, config))
            )
        beside = {name: _engine(name, spec, config) for name, (_model, spec) in self.beside.items()}
        for model_id, (name, spec) in self.added(config).items():  # bound beside: the ingress learns them live
            if model_id not in serving:  # (one dropped and deployed again is among the configured ones)
                beside[name] = _engine(name, spec, config)
        return serving, beside

    @property
    def removed(self) -> set[str]:
        """The models dropped and not deployed again: the application no longer serves them."""
        return self.dropped - set(self.serving)

    def added(self, config: ApplianceConfig) -> dict[str, tuple[str, ModelSpec]]:
        """The models served that the running ingress did not start with: added to the running application by a
        change (a model ``config`` does not name, or one dropped and deployed again)."""
        configured = {spec.id for spec in config.models}
        return {
            mid: generation for mid, generation in self.serving.items() if mid not in configured or mid in self.dropped
        }

    def pin_ingress(self, app: Application, ingress_config: Any) -> Application:
        """The ingress with a version that never changes for the same configuration: a model change (which
        rebuilds the application) never restarts it, whichever process applies the change. The API keys are
        left out: the ingress reads them from their file as they change (appliance.serve.keystore)."""
        if not self.ingress_version:
            data = {k: v for k, v in asdict(ingress_config).items() if k != "keys"}
            self.ingress_version = deployment_version(INGRESS_NAME, data)
        return _with_version(app, self.ingress_version)

    def pin(self, name: str, app: Application, options: Any) -> Application:
        """Another deployment of the application (the PII service) pinned to a digest of its options."""
        return _with_version(app, deployment_version(name, asdict(options) if options is not None else {}))


def _engine(name: str, spec: ModelSpec, config: ApplianceConfig) -> Application:
    from ray.serve.llm import LLMConfig, build_llm_deployment

    from appliance.serve.builder import llm_config_dict
    from appliance.serve.engine import ApplianceLLMServer

    data = llm_config_dict(spec, config)
    app = build_llm_deployment(
        LLMConfig.model_validate(data),
        deployment_cls=ApplianceLLMServer,
        name_prefix=DEFAULT_PREFIX,
        override_serve_options={"name": name},
    )
    return _with_version(app, deployment_version(name, data))


def _pinned(app: Application, name: str, spec: ModelSpec | None, config: ApplianceConfig) -> Application:
    from appliance.serve.builder import llm_config_dict

    data = llm_config_dict(spec, config) if spec is not None else {}
    return _with_version(app, deployment_version(name, data))


def _with_version(app: Application, version: str) -> Application:
    from ray.serve.deployment import Application

    return Application(app._bound_deployment.options(version=version, _internal=True))
