"""Models added to the running application after it started (``models deploy`` of a new model id in production).

The ingress learns the models it serves when its replica starts (``llm_deployments``, ``model_cards``, the gate's
request limits). A model added later reaches it through Serve's ``user_config``: the serve head builds
``{"added": {model id: {deployment, card, limits, info}}}`` from the generations it runs that models.yaml does not
name (:func:`added_models`), Serve calls the live replicas' ``reconfigure`` with it (a user_config change
reconfigures, it never restarts: the ingress keeps its pinned version), and the ingress adds the model to its
tables (``appliance.serve.ingress``). Plain JSON both ways: Serve ships user_config to the replicas.

The gate (an ASGI middleware of the same replica) reads a model's request limits from its configuration's and then
from :data:`ADDED_CAPS`, the one table per process that the ingress fills (:func:`with_added`): a model the ingress
adds is one the gate lets through.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from appliance.config.models import ModelSpec
from appliance.serve.checks import RequestLimits
from appliance.serve.ingress_config import ModelInfo, request_limits

if TYPE_CHECKING:
    from appliance.config.loader import ApplianceConfig

ADDED_KEY = "added"

# the request limits of the models added to this process's ingress replica (one ingress per replica process)
ADDED_CAPS: dict[str, RequestLimits | int] = {}


def with_added(caps: Mapping[str, RequestLimits | int]) -> ChainMap[str, RequestLimits | int]:
    """The limits of the models a replica started with, then those added to it since."""
    return ChainMap(dict(caps), ADDED_CAPS)


def added_models(serving: Mapping[str, tuple[str, ModelSpec]], config: ApplianceConfig) -> dict[str, Any]:
    """The ingress's user_config: every model served by ``serving`` (model id → deployment, spec) that the
    configuration the application was built with does not name. Imports Ray (the card is ray.serve.llm's)."""
    from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
    from ray.serve.llm import LLMConfig

    from appliance.serve.builder import card_metadata, llm_config_dict

    configured = {spec.id for spec in config.models}
    added = {}
    for model_id, (deployment, spec) in sorted(serving.items()):
        if model_id in configured:
            continue
        data = llm_config_dict(spec, config)
        card = to_model_metadata(model_id, LLMConfig.model_validate(data), card_metadata(spec))
        info = ModelInfo(spec.id, spec.source, spec.revision, data["engine_kwargs"], data["deployment_config"])
        added[model_id] = {
            "deployment": deployment,
            "card": card.model_dump(mode="json"),
            "limits": asdict(request_limits(spec, config.settings)),
            "info": asdict(info),
        }
    return {ADDED_KEY: added}


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
