from pathlib import Path

from appliance.config import ConfigFiles, load_config
from appliance.config.models import ModelSpec
from appliance.config.settings import Accelerator, Settings
from appliance.serve.builder import deployment_config, engine_kwargs, keeps_several, llm_config_dict, placement
from appliance.serve.ingress_config import IngressConfig
from tests.helpers import make_config_dir, set_line


def spec(**overrides) -> ModelSpec:
    return ModelSpec.model_validate({"id": "m", "source": "org/m", **overrides})


def test_safe_loading_defaults_and_pass_through() -> None:
    kwargs = engine_kwargs(spec(revision="abc123", max_model_len=2048, engine_kwargs={"enable_prefix_caching": True}))
    assert kwargs["load_format"] == "safetensors"
    assert kwargs["trust_remote_code"] is False
    assert kwargs["revision"] == kwargs["tokenizer_revision"] == "abc123"
    assert kwargs["max_model_len"] == 2048 and kwargs["enable_prefix_caching"] is True
    assert "load_format" not in engine_kwargs(spec(allow_pickle_weights=True))
    assert engine_kwargs(spec(engine_kwargs={"load_format": "auto"}))["load_format"] == "auto"


def test_replicas_or_autoscaling() -> None:
    settings = Settings()
    assert deployment_config(spec(), settings) == {
        "max_ongoing_requests": 256,
        "num_replicas": 1,
        "health_check_period_s": 2,
        "health_check_timeout_s": 10,
    }
    auto = deployment_config(spec(autoscaling={"min_replicas": 0, "max_replicas": 3}), settings)
    assert auto["autoscaling_config"] == {"min_replicas": 0, "max_replicas": 3, "target_ongoing_requests": 16}
    assert "num_replicas" not in auto
    assert not keeps_several(deployment_config(spec(), settings)) and not keeps_several(auto)


def test_standby_replicas_come_on_top_of_replicas_or_autoscaling() -> None:
    settings = Settings()
    fixed = deployment_config(spec(replicas=2, replicas_standby=1), settings)
    assert fixed["num_replicas"] == 3 and keeps_several(fixed)
    assert deployment_config(spec(replicas_standby=1), settings)["num_replicas"] == 2
    auto = deployment_config(spec(autoscaling={"min_replicas": 1, "max_replicas": 3}, replicas_standby=1), settings)
    assert auto["autoscaling_config"]["min_replicas"] == 2 and auto["autoscaling_config"]["max_replicas"] == 4
    assert keeps_several(auto)
    assert spec(autoscaling={"min_replicas": 1, "max_replicas": 3}, replicas_standby=2).starting_replicas == 3


def test_a_model_pinned_to_nodes_selects_them_for_every_bundle() -> None:
    pinned = deployment_config(spec(nodes=["gpu-b", "gpu-a"]), Settings())
    assert pinned["placement_group_bundle_label_selector"] == [{"appliance.io/node": "in(gpu-a,gpu-b)"}]
    assert "placement_group_bundle_label_selector" not in deployment_config(spec(), Settings())


def test_cpu_mode_asks_for_cpu_bundles_gpu_mode_leaves_the_default() -> None:
    assert placement(spec(), Accelerator.CPU) == {"bundles": [{"CPU": 1}]}
    assert placement(spec(tensor_parallel_size=2), Accelerator.GPU) is None


def test_llm_config_from_a_validated_config(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_config_dir(tmp_path, with_models=True)
    set_line(tmp_path / ".secrets", "HF_TOKEN", "hf_secret_token_value")
    set_line(tmp_path / ".env", "SERVE_STREAM_BATCHING_MS", "20")
    config = load_config(ConfigFiles(), gpu_count=0)
    data = llm_config_dict(config.models[0], config)
    assert data["model_loading_config"] == {
        "model_id": "qwen2.5-0.5b-instruct",
        "model_source": "Qwen/Qwen2.5-0.5B-Instruct",
    }
    assert data["engine_kwargs"]["revision"] == "7ae557604adf67be50417f59c2c2f167def9a775"
    assert data["experimental_configs"] == {
        "stream_batching_interval_ms": 20.0,
        "appliance_stream_batching_max_ms": 150.0,
    }
    # the HF token is a file in the serve container (HF_TOKEN_PATH), never a Ray runtime-env variable
    assert data["runtime_env"]["env_vars"] == {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_USE_AOT_COMPILE": "0"}
    assert "hf_secret_token_value" not in repr(data)
    ingress = IngressConfig.from_config(config, audit_path="a.log", models=())
    assert {m: limits.max_tokens for m, limits in ingress.caps.items()} == {"qwen2.5-0.5b-instruct": 2048}
    assert (
        ingress.caps["qwen2.5-0.5b-instruct"].max_n == 4
        and not ingress.caps["qwen2.5-0.5b-instruct"].allow_chat_template
    )
    assert ingress.max_body_bytes == 10 * 1024 * 1024 and ingress.auth_enabled


def test_embed_and_score_models_use_vllms_pooling_runner() -> None:
    from appliance.serve.builder import card_metadata

    embed = engine_kwargs(spec(task="embed", pooling={"pooling_type": "MEAN", "use_activation": True}))
    assert embed["runner"] == "pooling" and "convert" not in embed  # vLLM converts a decoder itself
    assert embed["pooler_config"] == {"pooling_type": "MEAN", "use_activation": True}
    assert engine_kwargs(spec(task="score"))["runner"] == "pooling"
    assert "pooler_config" not in engine_kwargs(spec(task="score"))
    plain = engine_kwargs(spec())
    assert not {"runner", "pooler_config", "tool_call_parser", "enable_auto_tool_choice"} & plain.keys()
    assert card_metadata(spec(task="embed")) == {
        "task": "embed",
        "endpoints": ["/v1/embeddings", "/v1/score", "/v1/rerank", "/tokenize", "/detokenize"],
    }
    assert card_metadata(spec())["endpoints"] == [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/tokenize",
        "/detokenize",
    ]
    assert card_metadata(spec())["tool_choice"] == ["none"]
    assert card_metadata(spec(tool_call_parser="hermes"))["tool_choice"] == ["none"]  # vLLM loads no parser
    tools = card_metadata(spec(tool_call_parser="hermes", enable_auto_tool_choice=True))["tool_choice"]
    assert tools == ["none", "auto", "required", "named"]


def test_tool_calling_settings_reach_vllms_frontend_arguments() -> None:
    kwargs = engine_kwargs(spec(tool_call_parser="hermes", enable_auto_tool_choice=True))
    assert kwargs["tool_call_parser"] == "hermes" and kwargs["enable_auto_tool_choice"] is True
    # ray.serve.llm splits engine_kwargs into vLLM's engine and frontend arguments by field name: these are
    # frontend ones, and the pooling ones engine ones (an unknown name would fail the deployment)
    import dataclasses

    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.cli_args import FrontendArgs

    frontend = {f.name for f in dataclasses.fields(FrontendArgs)}
    engine = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    assert {"tool_call_parser", "enable_auto_tool_choice"} <= frontend
    assert {"runner", "pooler_config"} <= engine


def test_pooling_options_are_vllms_pooler_config() -> None:
    from vllm.config.pooler import PoolerConfig

    from appliance.config.models import PoolingSpec

    options = PoolingSpec(
        pooling_type="LAST", use_activation=False, dimensions=64, max_embed_len=1024, enable_chunked_processing=True
    ).pooler_config()
    made = PoolerConfig(**options)
    assert (made.seq_pooling_type, made.use_activation, made.dimensions) == ("LAST", False, 64)
    assert PoolingSpec().pooler_config() == {}


def test_tool_call_parser_names_are_vllms() -> None:
    from vllm.tool_parsers import ToolParserManager

    from appliance.config.parsers import TOOL_CALL_PARSERS

    registered = set(ToolParserManager.tool_parsers) | set(ToolParserManager.lazy_parsers)
    assert set(TOOL_CALL_PARSERS) == registered


def test_ray_serve_llm_takes_the_health_check_options(tmp_path: Path, monkeypatch) -> None:
    """LLMConfig validates its deployment_config against Serve's options: ours must be among them."""
    from ray.llm._internal.serve.core.server import builder as llm_builder
    from ray.serve.llm import LLMConfig

    from appliance.serve.engine import ApplianceLLMServer

    monkeypatch.chdir(tmp_path)
    make_config_dir(tmp_path, with_models=True)
    config = load_config(ConfigFiles(), gpu_count=0)
    llm = LLMConfig.model_validate(llm_config_dict(config.models[0], config))
    options = llm_builder.maybe_apply_llm_deployment_config_defaults(  # what build_llm_deployment gives Serve
        llm_builder.DEFAULT_DEPLOYMENT_OPTIONS, ApplianceLLMServer.get_deployment_options(llm)
    )
    assert options["health_check_period_s"] == 2 and options["health_check_timeout_s"] == 10
