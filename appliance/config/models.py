"""The served models: ``models.yaml`` (or the ``MODEL_*`` shorthand in ``.env``) as typed specs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.config.fields import Dtype, Fraction, ModelId, NodeName, NonEmptyStr, NonNegativeInt, PositiveInt


class AutoscalingSpec(BaseModel):
    """Ray Serve autoscaling of one model's engine replicas."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    min_replicas: NonNegativeInt = Field(1, description="Fewest replicas kept running (0 scales to zero).")
    max_replicas: PositiveInt = Field(1, description="Most replicas started under load.")
    target_ongoing_requests: Annotated[float, Field(gt=0)] = Field(
        16, description="Requests in flight per replica that Serve aims for when scaling."
    )


class RequestLimitsSpec(BaseModel):
    """Per-model bounds on request parameters; an unset one takes the REQUEST_MAX_* setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_n: PositiveInt | None = Field(None, description="Largest 'n' / 'best_of'.")
    max_logprobs: NonNegativeInt | None = Field(None, description="Largest 'logprobs' / 'top_logprobs'.")
    max_messages: PositiveInt | None = Field(None, description="Most chat messages.")
    max_prompts: PositiveInt | None = Field(None, description="Most prompts in one completions request.")
    max_tools: PositiveInt | None = Field(None, description="Most tools in one request.")
    max_stop: PositiveInt | None = Field(None, description="Most stop sequences / stop token ids.")
    max_inputs: PositiveInt | None = Field(
        None, description="Most inputs in one embeddings request / documents in one score or rerank request."
    )


# What a model is served for: text generation (chat, completions), embeddings, or scoring (score, rerank).
Task = Literal["generate", "embed", "score"]
TOKENIZER_ROUTES = ("/tokenize", "/detokenize")  # vLLM's own, for every kind of model
TASK_ROUTES: dict[str, tuple[str, ...]] = {
    "generate": ("/v1/chat/completions", "/v1/completions", "/v1/responses", *TOKENIZER_ROUTES),
    "embed": ("/v1/embeddings", "/v1/score", "/v1/rerank", *TOKENIZER_ROUTES),  # vLLM scores with embeddings too
    "score": ("/v1/score", "/v1/rerank", *TOKENIZER_ROUTES),
}


class PoolingSpec(BaseModel):
    """vLLM's pooler options for an ``embed`` / ``score`` model (its ``pooler_config``); unset: the model's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pooling_type: Literal["MEAN", "LAST", "CLS"] | None = Field(
        None, description="How token states become one vector: MEAN, LAST or CLS."
    )
    use_activation: bool | None = Field(
        None, description="Normalise embeddings / apply the score activation (vLLM's default: on)."
    )
    dimensions: PositiveInt | None = Field(
        None, description="Default embedding size for a Matryoshka model (requests may ask with 'dimensions')."
    )
    max_embed_len: PositiveInt | None = Field(None, description="Longest input accepted for embedding.")
    enable_chunked_processing: bool = Field(
        False, description="Embed inputs longer than the model's context in chunks, averaged."
    )

    def pooler_config(self) -> dict[str, Any]:
        """The options that are set, as vLLM's ``pooler_config``."""
        return self.model_dump(exclude_none=True, exclude_defaults=True)


class ModelSpec(BaseModel):
    """One served model. Engine arguments not named here go through ``engine_kwargs`` unchanged."""

    # coerce_numbers_to_str: an all-digit revision or id written without quotes is still text.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, coerce_numbers_to_str=True)

    id: ModelId = Field(description="Name clients use in the OpenAI 'model' field; also used in routes and metrics.")
    source: NonEmptyStr = Field(description="Hugging Face repo id (org/name) or an absolute local path.")
    revision: str | None = Field(None, description="Commit hash, tag or branch to pin; none = default branch.")
    tensor_parallel_size: PositiveInt = Field(1, description="GPUs one replica is split across.")
    pipeline_parallel_size: PositiveInt = Field(
        1, description="Pipeline stages (> 1 needs Ray worker nodes and GPU mode)."
    )
    max_model_len: PositiveInt | None = Field(None, description="Longest context; none = the model's own maximum.")
    gpu_memory_utilization: Fraction = Field(0.90, description="Share of each GPU's memory vLLM may use.")
    dtype: Dtype = Field("auto", description="One of auto, bfloat16, float16, float32.")
    replicas: PositiveInt | None = Field(None, description="Fixed replica count; none = 1. Exclusive with autoscaling.")
    autoscaling: AutoscalingSpec | None = Field(None, description="Autoscaling instead of fixed replicas.")
    replicas_standby: NonNegativeInt = Field(
        0,
        description="Warm replicas on top of replicas (or of autoscaling's min and max): they take load too, and "
        "when an engine crashes its requests go to the others instead of 503 while Serve replaces it.",
    )
    max_tokens_cap: PositiveInt = Field(2048, description="Largest max_tokens a request may ask for.")
    request_limits: RequestLimitsSpec = Field(
        default_factory=RequestLimitsSpec, description="Bounds on request parameters (REQUEST_MAX_* by default)."
    )
    allow_client_chat_template: bool = Field(
        False, description="Let requests send their own chat_template / chat_template_kwargs (refused by default)."
    )
    task: Task = Field(
        "generate",
        description="generate (chat, completions), embed (embeddings, score, rerank) "
        "or score (score, rerank: a cross-encoder).",
    )
    pooling: PoolingSpec | None = Field(None, description="Pooler options of an embed / score model.")
    tool_call_parser: str | None = Field(
        None, description="vLLM's tool-call parser for this model's chat template (e.g. hermes, llama3_json)."
    )
    enable_auto_tool_choice: bool = Field(
        False,
        description="Tool calling (tool_choice auto, required or named; vLLM 0.32 loads the parser only with "
        "it); needs tool_call_parser.",
    )
    trust_remote_code: bool = Field(False, description="Run the model repo's own Python code (unsafe).")
    allow_pickle_weights: bool = Field(
        False, description="Accept .bin/.pt (pickle) weights; by default only safetensors are loaded."
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra vLLM engine arguments passed through unchanged."
    )
    nodes: list[NodeName] | None = Field(
        None,
        description="Ray nodes this model may run on (RAY_NODE_NAME of the head, the names workers joined "
        "with); none = wherever Ray finds room.",
    )

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def starting_replicas(self) -> int:
        """The engine replicas kept running at least: ``replicas`` (or autoscaling's min) plus the standby ones."""
        base = self.autoscaling.min_replicas if self.autoscaling is not None else (self.replicas or 1)
        return base + self.replicas_standby


def model_from_settings(settings: Any) -> ModelSpec:
    """The single model the ``MODEL_*`` settings of ``.env`` describe (when there is no models.yaml)."""
    return ModelSpec(
        id=settings.model_id,
        source=settings.model_source,
        revision=settings.model_revision or None,
        tensor_parallel_size=settings.model_tensor_parallel_size,
        max_model_len=settings.model_max_model_len,
        gpu_memory_utilization=settings.model_gpu_memory_utilization,
        dtype=settings.model_dtype,
        max_tokens_cap=settings.model_max_tokens_cap,
    )
