"""From the validated config to one Ray Serve application: an LLMServer per model, the appliance ingress in
front. The engine arguments and deployment options are decided by pure functions (unit-tested without
Ray); :func:`build_app` turns them into ``ray.serve.llm`` objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.cluster.placement import bundle_label_selector, head_only
from appliance.config.loader import ApplianceConfig
from appliance.config.models import TASK_ROUTES, ModelSpec
from appliance.config.settings import Accelerator, Settings
from appliance.serve.ingress_config import IngressConfig, ModelInfo

if TYPE_CHECKING:
    from ray.serve.deployment import Application

    from appliance.serve.generations import Generations

# What vLLM on the CPU needs to fit beside the rest on a small machine (GiB of KV cache).
CPU_KV_CACHE_GIB = "1"
# How often Serve's controller asks each engine replica check_health (Ray Serve LLM's default: 10 s; a replica
# is replaced after 3 failed checks): a dead engine's replica is replaced ~6 s after it died instead of ~30 s.
HEALTH_CHECK_PERIOD_S = 2
HEALTH_CHECK_TIMEOUT_S = 10  # a busy replica still has 3 × 10 s to answer before it is replaced


def engine_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """vLLM engine arguments for ``spec``: the typed fields, safe-loading defaults, then the pass-through."""
    kwargs: dict[str, Any] = {
        "tensor_parallel_size": spec.tensor_parallel_size,
        "pipeline_parallel_size": spec.pipeline_parallel_size,
        "gpu_memory_utilization": spec.gpu_memory_utilization,
        "dtype": spec.dtype,
        "trust_remote_code": spec.trust_remote_code,
    }
    if spec.max_model_len is not None:
        kwargs["max_model_len"] = spec.max_model_len
    if spec.revision:
        kwargs["revision"] = spec.revision
        kwargs["tokenizer_revision"] = spec.revision
    if not spec.allow_pickle_weights:
        kwargs["load_format"] = "safetensors"
    kwargs.update(task_kwargs(spec))
    kwargs.update(spec.engine_kwargs)
    return kwargs


def task_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """vLLM arguments for the model's task: the pooling runner for embed / score models (vLLM converts a
    decoder into an embedding model itself: ``convert`` auto), the tool-call parser of a generating one."""
    kwargs: dict[str, Any] = {}
    if spec.task != "generate":
        kwargs["runner"] = "pooling"
        pooler = spec.pooling.pooler_config() if spec.pooling is not None else {}
        if pooler:
            kwargs["pooler_config"] = pooler
    if spec.tool_call_parser:
        kwargs["tool_call_parser"] = spec.tool_call_parser
    if spec.enable_auto_tool_choice:
        kwargs["enable_auto_tool_choice"] = True
    return kwargs


def card_metadata(spec: ModelSpec) -> dict[str, Any]:
    """What ``/v1/models`` says a model does: its task, the routes that take it, and for a generating model the
    ``tool_choice`` values it accepts (vLLM 0.32 loads the tool-call parser only with auto tool choice on, and
    refuses any tool_choice but "none" without it)."""
    data: dict[str, Any] = {"task": spec.task, "endpoints": list(TASK_ROUTES[spec.task])}
    if spec.task == "generate":
        tools = bool(spec.tool_call_parser and spec.enable_auto_tool_choice)
        data["tool_choice"] = ["none", "auto", "required", "named"] if tools else ["none"]
    return data


def deployment_config(spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_ongoing_requests": settings.serve_max_ongoing_requests,
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        "health_check_timeout_s": HEALTH_CHECK_TIMEOUT_S,
    }
    if spec.autoscaling is not None:
        options["autoscaling_config"] = {
            "min_replicas": spec.autoscaling.min_replicas + spec.replicas_standby,
            "max_replicas": spec.autoscaling.max_replicas + spec.replicas_standby,
            "target_ongoing_requests": spec.autoscaling.target_ongoing_requests,
        }
    else:
        options["num_replicas"] = spec.starting_replicas
    if spec.nodes:  # every bundle of every replica (engine and its workers) on the named nodes only
        options["placement_group_bundle_label_selector"] = bundle_label_selector(spec.nodes)
    return options


def keeps_several(deployment: dict[str, Any]) -> bool:
    """Whether a model's deployment options (:func:`deployment_config`) keep more than one engine replica running:
    then a replica whose engine died leaves (:class:`appliance.serve.engine.ApplianceLLMServer`) and the ingress
    sends requests that met it to the others instead of answering 503."""
    autoscaling = deployment.get("autoscaling_config")
    if autoscaling is not None:
        return int(autoscaling.get("min_replicas", 1)) > 1
    return int(deployment.get("num_replicas", 1)) > 1


def placement(spec: ModelSpec, accelerator: Accelerator) -> dict[str, Any] | None:
    """CPU mode asks Ray for a CPU bundle (the default asks for GPUs and would wait forever without one);
    GPU mode leaves ray.serve.llm to derive one GPU bundle per tensor × pipeline rank."""
    if accelerator is Accelerator.CPU:
        return {"bundles": [{"CPU": 1}]}
    return None


def runtime_env(accelerator: Accelerator) -> dict[str, Any]:
    """Environment of the engine replicas. Never a secret: Ray keeps runtime envs in its GCS and shows them in
    its dashboard and state API. The Hugging Face token reaches huggingface_hub as a file (HF_TOKEN_PATH, set
    for the serve container by docker-compose.yml; the file is rendered by ``make up``)."""
    env: dict[str, str] = {}
    if accelerator is Accelerator.CPU:
        env["VLLM_CPU_KVCACHE_SPACE"] = CPU_KV_CACHE_GIB
        # vLLM 0.32's AOT compile cache (its default with torch >= 2.10) cannot load what it saved on the CPU
        # backend ("'function' object has no attribute 'finalize_loading'"), so every load compiled again; the
        # older path reuses inductor's cache (TORCHINDUCTOR_CACHE_DIR, in the model-cache volume in the stack):
        # measured here, a reload's engine init 17.3 s -> 8.6 s (tiny model, 2 cores).
        env["VLLM_USE_AOT_COMPILE"] = "0"
    return {"env_vars": env} if env else {}


def llm_config_dict(spec: ModelSpec, config: ApplianceConfig) -> dict[str, Any]:
    """The ``LLMConfig`` of one model, as a plain dict."""
    settings = config.settings
    data: dict[str, Any] = {
        "model_loading_config": {"model_id": spec.id, "model_source": spec.source},
        "engine_kwargs": engine_kwargs(spec),
        "deployment_config": deployment_config(spec, settings),
        "experimental_configs": {
            "stream_batching_interval_ms": settings.serve_stream_batching_ms,
            "appliance_stream_batching_max_ms": settings.serve_stream_batching_max_ms,
        },
    }
    pg = placement(spec, config.accelerator)
    if pg is not None:
        data["placement_group_config"] = pg
    env = runtime_env(config.accelerator)
    if env:
        data["runtime_env"] = env
    return data


def model_infos(config: ApplianceConfig) -> tuple[ModelInfo, ...]:
    infos = []
    for spec in config.models:
        data = llm_config_dict(spec, config)
        infos.append(ModelInfo(spec.id, spec.source, spec.revision, data["engine_kwargs"], data["deployment_config"]))
    return tuple(infos)


def ingress_options(settings: Settings) -> dict[str, Any]:
    return {
        "num_replicas": settings.serve_ingress_replicas,
        "max_ongoing_requests": max(1000, settings.serve_max_ongoing_requests * 4),
        # on a cluster it stays on the head: it writes the audit log and reads the API keys there
        "ray_actor_options": head_only({"num_cpus": 1}, bool(settings.ray_cluster_interface)),
    }


def build_app(
    config: ApplianceConfig,
    *,
    audit_path: str,
    secrets_path: str | None,
    generations: Generations | None = None,
    root: Path | None = None,
) -> Application:
    """The Ray Serve application for ``config`` (imports Ray: call it where the serve extra is installed).
    ``generations``: which deployment serves each model and which new ones start beside (model changes)."""
    from ray import serve
    from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
    from ray.serve.llm import LLMConfig, build_llm_deployment

    from appliance.serve.engine import ApplianceLLMServer
    from appliance.serve.generations import INGRESS_NAME
    from appliance.serve.ingress import make_ingress_class
    from appliance.serve.pii.service import build_deployment as build_pii_deployment

    llm_configs = [LLMConfig.model_validate(llm_config_dict(spec, config)) for spec in config.models]
    deployments = {
        c.model_id: build_llm_deployment(c, deployment_cls=ApplianceLLMServer, name_prefix="LLMServer:")
        for c in llm_configs
    }
    if generations is not None:  # the model lifecycle (appliance.serve.lifecycle_port): names and stable versions
        deployments, beside = generations.apply(deployments, config)
    specs = {spec.id: spec for spec in config.models}
    cards = {
        c.model_id: to_model_metadata(c.model_id, c, card_metadata(specs[c.model_id]))
        for c in llm_configs
        if c.model_id in deployments  # (not a model a deploy removed from the running application)
    }
    ingress = IngressConfig.from_config(
        config, audit_path=audit_path, models=model_infos(config), secrets_path=secrets_path, root=root
    )
    ingress_cls = make_ingress_class(ingress)
    extra = {"pii_service": build_pii_deployment(ingress.pii)} if ingress.pii is not None else {}
    if generations is not None:
        extra["generations"] = beside
        if "pii_service" in extra:  # pinned like the rest: a model change never restarts PII masking
            extra["pii_service"] = generations.pin("PIIService", extra["pii_service"], ingress.pii)
    # serve.deployment's stubs type it as a decorator factory only; called with a class it is the Deployment
    options = ingress_options(config.settings)
    if generations is not None:  # models added since the start: a user_config change reconfigures the ingress
        from appliance.serve.live_models import added_models

        options["user_config"] = added_models(generations.added(config), config, generations.removed)
    app = serve.deployment(ingress_cls, name=INGRESS_NAME, **options).bind(  # type: ignore[attr-defined]
        llm_deployments=deployments, model_cards=cards, ingress_config=ingress, **extra
    )
    return generations.pin_ingress(app, ingress) if generations is not None else app
