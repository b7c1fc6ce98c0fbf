"""Model lifecycle transitions as metrics, recorded through Ray's metrics API by the process that applies
changes (the serve head): Prometheus scrapes them with Ray's own on serve:8080 as
``ray_appliance_model_transitions_total{model, environment, status}`` and
``ray_appliance_model_rollbacks_total{model, environment}`` (alert ``ModelRolledBack``). Labels are configured
model ids, the two environments and the registry's statuses only; a model id not in the configuration is
counted as ``other``.
"""

from __future__ import annotations

from collections.abc import Iterable

from appliance.registry.states import Environment, Status

OTHER = "other"


class RayLifecycleEvents:
    def __init__(self, configured: Iterable[str]) -> None:
        from ray.util.metrics import Counter

        self._configured = frozenset(configured)
        self._transitions = Counter(
            "appliance_model_transitions",
            "Model revision status changes applied by model changes, by model, environment and the status reached.",
            tag_keys=("model", "environment", "status"),
        )
        self._rollbacks = Counter(
            "appliance_model_rollbacks",
            "Model changes that failed and were rolled back to "
            "the last good generation (or refused before anything started).",
            tag_keys=("model", "environment"),
        )

    def _model(self, model_id: str) -> str:
        return model_id if model_id in self._configured else OTHER

    def transition(self, model_id: str, environment: Environment, status: Status) -> None:
        self._transitions.inc(
            1, {"model": self._model(model_id), "environment": environment.value, "status": status.value}
        )

    def rolled_back(self, model_id: str, environment: Environment, reason: str) -> None:
        self._rollbacks.inc(1, {"model": self._model(model_id), "environment": environment.value})
