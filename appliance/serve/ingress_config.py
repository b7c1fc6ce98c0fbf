"""What the ingress replicas need to know, made from the validated config in the driver and shipped to them.

Plain data only (it is pickled into every replica); no Ray or FastAPI imports here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.config.loader import ApplianceConfig
from appliance.config.models import ModelSpec
from appliance.config.secrets import ApiKeyRecord
from appliance.config.settings import Settings
from appliance.registry.db import Dialect, parse_registry_url
from appliance.serve.checks import RequestLimits
from appliance.serve.pii.engine import PiiOptions, options_from_settings


@dataclass(frozen=True)
class ModelInfo:
    """What ``/admin/models`` shows about a model besides its live state."""

    id: str
    source: str
    revision: str | None
    engine_kwargs: dict[str, Any]
    deployment: dict[str, Any]


@dataclass(frozen=True)
class BatchOptions:
    """The Batch API's settings (BATCH_*), the data directory made absolute."""

    data_dir: str
    file_max_bytes: int
    max_requests: int
    concurrency: int
    idle_max_live: int


@dataclass(frozen=True)
class IngressConfig:
    auth_enabled: bool
    max_body_bytes: int
    caps: dict[str, RequestLimits]  # model id -> the bounds on its requests
    audit_path: str
    audit_prompts: bool
    secrets_path: str | None
    keys: tuple[ApiKeyRecord, ...]
    models: tuple[ModelInfo, ...] = field(default=())
    ready_cache_seconds: float = 30.0  # SERVE_READY_PROBE_SECONDS
    ready_timeout_seconds: float = 60.0
    pii: PiiOptions | None = None  # PII masking, None when PII_ENABLED is off
    registry_url: str | None = None  # the model registry (disabled models answer 404); None: not consulted
    pii_embeddings: str = "mask"  # PII_EMBEDDINGS: embeddings / score / rerank inputs with personal data
    batch: BatchOptions | None = None  # the Batch API (its state in the registry); None: answered 503

    @classmethod
    def from_config(
        cls,
        config: ApplianceConfig,
        *,
        audit_path: str,
        models: tuple[ModelInfo, ...],
        secrets_path: str | None = None,
        root: Path | None = None,
    ) -> IngressConfig:
        """``root``: what relative paths of the settings (REGISTRY_URL's SQLite file, BATCH_DATA_DIR) are relative
        to; default the directory of the ``.env`` (the serve command passes its working directory: in the stack the
        settings are a copy mounted elsewhere, and the project is the working directory, /appliance)."""
        settings = config.settings
        root = root if root is not None else config.files.env.resolve().parent
        return cls(
            auth_enabled=settings.auth_enabled,
            max_body_bytes=settings.max_request_body_mb * 1024 * 1024,
            caps={m.id: request_limits(m, settings) for m in config.models},
            audit_path=audit_path,
            audit_prompts=settings.audit_log_prompts,  # with PII on, the gate logs only the masked prompt
            secrets_path=secrets_path,
            keys=config.secrets.api_keys,
            models=models,
            pii=options_from_settings(settings) if settings.pii_enabled else None,
            registry_url=absolute_registry_url(settings.registry_url, root),
            pii_embeddings=settings.pii_embeddings.value,
            batch=batch_options(settings, root),
            ready_cache_seconds=settings.serve_ready_probe_seconds,
        )


def request_limits(model: ModelSpec, settings: Settings) -> RequestLimits:
    """A model's request bounds: its own ``request_limits`` in models.yaml, else the ``REQUEST_MAX_*`` settings."""
    own = model.request_limits

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    return RequestLimits(
        max_tokens=model.max_tokens_cap,
        max_n=pick(own.max_n, settings.request_max_n),
        max_logprobs=pick(own.max_logprobs, settings.request_max_logprobs),
        max_messages=pick(own.max_messages, settings.request_max_messages),
        max_prompts=pick(own.max_prompts, settings.request_max_prompts),
        max_tools=pick(own.max_tools, settings.request_max_tools),
        max_stop=pick(own.max_stop, settings.request_max_stop),
        allow_chat_template=model.allow_client_chat_template,
        task=model.task,
        max_inputs=pick(own.max_inputs, settings.request_max_inputs),
    )


def absolute_registry_url(url: str, root: Path) -> str:
    """REGISTRY_URL as the ingress replicas can open it: a relative SQLite path is the project's, not their cwd's."""
    location = parse_registry_url(url)
    if location.dialect is Dialect.SQLITE and location.path is not None and not location.path.is_absolute():
        return f"sqlite:///{root / location.path}"  # three slashes + an absolute path = four
    return url


def batch_options(settings: Settings, root: Path) -> BatchOptions:
    data_dir = Path(settings.batch_data_dir)
    return BatchOptions(
        data_dir=str(data_dir if data_dir.is_absolute() else root / data_dir),
        file_max_bytes=settings.batch_file_max_mb * 1024 * 1024,
        max_requests=settings.batch_max_requests,
        concurrency=settings.batch_concurrency,
        idle_max_live=settings.batch_idle_max_live_requests,
    )
