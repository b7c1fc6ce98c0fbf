"""Models added to the running application after it started (``models deploy`` of a new model id in production),
and models removed from it (``models deploy`` of a models.yaml that no longer names them).

The ingress learns the models it serves when its replica starts (``llm_deployments``, ``model_cards``, the gate's
request limits). A model added later reaches it through Serve's ``user_config``: the serve head builds
``{"added": {model id: {deployment, card, limits, info}}, "removed": [model id]}`` from the generations it runs
that the ingress did not start with and the models a deploy removed (:func:`added_models`); Serve calls the live
replicas' ``reconfigure`` with it (a user_config change reconfigures, it never restarts: the ingress keeps its
pinned version), and the ingress adds the model to its tables, or drops it from them (``appliance.serve.ingress``).
Plain JSON both ways: Serve ships user_config to the replicas.

The gate (an ASGI middleware of the same replica) reads a model's request limits from its configuration's and then
from :data:`ADDED_CAPS`, the one table per process that the ingress fills (:func:`with_added`): a model the ingress
adds is one the gate lets through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from appliance.config.models import ModelSpec
from appliance.serve.checks import RequestLimits
from appliance.serve.ingress_config import ModelInfo, request_limits

if TYPE_CHECKING:
    from appliance.config.loader import ApplianceConfig

ADDED_KEY = "added"
REMOVED_KEY = "removed"

# the request limits of the models added to this process's ingress replica (one ingress per replica process), and
# the models it started with that a deploy removed since
ADDED_CAPS: dict[str, RequestLimits | int] = {}
REMOVED: set[str] = set()


class LiveCaps(Mapping[str, "RequestLimits | int"]):
    """The request limits of the models a replica serves now: those it started with (less any removed since),
    then those added to it (an added model's own limits win: one removed and deployed again)."""

    def __init__(self, configured: Mapping[str, RequestLimits | int]) -> None:
        self._configured = dict(configured)

    def __getitem__(self, model_id: str) -> RequestLimits | int:
        if model_id in ADDED_CAPS:
            return ADDED_CAPS[model_id]
        if model_id in REMOVED:
            raise KeyError(model_id)
        return self._configured[model_id]

    def __iter__(self) -> Iterator[str]:
        return iter([*(m for m in self._configured if m not in REMOVED and m not in ADDED_CAPS), *ADDED_CAPS])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def with_added(caps: Mapping[str, RequestLimits | int]) -> LiveCaps:
    """The limits of the models a replica started with, then those added to it since (less those removed)."""
    return LiveCaps(caps)


def added_models(
    serving: Mapping[str, tuple[str, ModelSpec]], config: ApplianceConfig, removed: Iterable[str] = ()
) -> dict[str, Any]:
    """The ingress's user_config: every model of ``serving`` (model id → deployment, spec: those the ingress did
    not start with, appliance.serve.generations.Generations.added), and the models it must no longer serve
    (``removed``: a deploy dropped them). Imports Ray (the card is ray.serve.llm's)."""
    from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
    from ray.serve.llm import LLMConfig

    from appliance.serve.builder import card_metadata, llm_config_dict

    added = {}
    for model_id, (deployment, spec) in sorted(serving.items()):
        data = llm_config_dict(spec, config)
        card = to_model_metadata(model_id, LLMConfig.model_validate(data), card_metadata(spec))
        info = ModelInfo(spec.id, spec.source, spec.revision, data["engine_kwargs"], data["deployment_config"])
        added[model_id] = {
            "deployment": deployment,
            "card": card.model_dump(mode="json"),
            "limits": asdict(request_limits(spec, config.settings)),
            "info": asdict(info),
        }
    return {ADDED_KEY: added, REMOVED_KEY: sorted(removed)}


def parse_removed(user_config: Mapping[str, Any] | None) -> set[str]:
    """The ingress side: the models it must no longer serve, from the user_config above."""
    return {str(model_id) for model_id in (user_config or {}).get(REMOVED_KEY) or ()}


def parse_added(
    user_config: Mapping[str, Any] | None,
) -> dict[str, tuple[str, dict[str, Any], RequestLimits, ModelInfo]]:
    """The ingress side: model id → (deployment, card data, limits, info) from the user_config above."""
    added = (user_config or {}).get(ADDED_KEY) or {}
    return {
        model_id: (
            str(entry["deployment"]),
            dict(entry["card"]),
            RequestLimits(**entry["limits"]),
            ModelInfo(**entry["info"]),
        )
        for model_id, entry in added.items()
    }
