"""The served models: ``models.yaml`` (or the ``MODEL_*`` shorthand in ``.env``) as typed specs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from appliance.config.fields import MODEL_ID_RE, expected

DTYPES = ("auto", "bfloat16", "float16", "float32")


class AutoscalingSpec(BaseModel):
    """Ray Serve autoscaling of one model's engine replicas."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    min_replicas: int = Field(1, description="Fewest replicas kept running (0 scales to zero).")
    max_replicas: int = Field(1, description="Most replicas started under load.")
    target_ongoing_requests: float = Field(
        16, description="Requests in flight per replica that Serve aims for when scaling."
    )

    @field_validator("min_replicas")
    @classmethod
    def _min(cls, value: int) -> int:
        if value < 0:
            raise expected("an integer >= 0")
        return value

    @field_validator("max_replicas")
    @classmethod
    def _max(cls, value: int) -> int:
        if value < 1:
            raise expected("an integer >= 1")
        return value

    @field_validator("target_ongoing_requests")
    @classmethod
    def _target(cls, value: float) -> float:
        if value <= 0:
            raise expected("a number > 0")
        return value


class ModelSpec(BaseModel):
    """One served model. Engine arguments not named here go through ``engine_kwargs`` unchanged."""

    # coerce_numbers_to_str: an all-digit revision or id written without quotes is still text.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, coerce_numbers_to_str=True)

    id: str = Field(description="Name clients use in the OpenAI 'model' field; also used in routes and metrics.")
    source: str = Field(description="Hugging Face repo id (org/name) or an absolute local path.")
    revision: str | None = Field(None, description="Commit hash, tag or branch to pin; none = default branch.")
    tensor_parallel_size: int = Field(1, description="GPUs one replica is split across.")
    pipeline_parallel_size: int = Field(1, description="Pipeline stages (needs Ray worker nodes when > 1).")
    max_model_len: int | None = Field(None, description="Longest context; none = the model's own maximum.")
    gpu_memory_utilization: float = Field(0.90, description="Share of each GPU's memory vLLM may use.")
    dtype: str = Field("auto", description="One of " + ", ".join(DTYPES) + ".")
    replicas: int | None = Field(None, description="Fixed replica count; none = 1. Exclusive with autoscaling.")
    autoscaling: AutoscalingSpec | None = Field(None, description="Autoscaling instead of fixed replicas.")
    max_tokens_cap: int = Field(2048, description="Largest max_tokens a request may ask for.")
    trust_remote_code: bool = Field(False, description="Run the model repo's own Python code (unsafe).")
    allow_pickle_weights: bool = Field(
        False, description="Accept .bin/.pt (pickle) weights; by default only safetensors are loaded."
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra vLLM engine arguments passed through unchanged."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not MODEL_ID_RE.match(value):
            raise expected(
                "a model id of letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)"
            )
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not value.strip():
            raise expected("a Hugging Face repo id or a local path")
        return value

    @field_validator("tensor_parallel_size", "pipeline_parallel_size", "max_model_len", "max_tokens_cap", "replicas")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise expected("an integer >= 1")
        return value

    @field_validator("gpu_memory_utilization")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise expected("a number greater than 0 and at most 1")
        return value

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str) -> str:
        if value not in DTYPES:
            raise expected("one of " + ", ".join(DTYPES))
        return value

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size


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
