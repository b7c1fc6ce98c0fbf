"""What the ingress replicas need to know, made from the validated config in the driver and shipped to them.

Plain data only (it is pickled into every replica); no Ray or FastAPI imports here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.config.loader import ApplianceConfig
from appliance.config.secrets import ApiKeyRecord
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
class IngressConfig:
    auth_enabled: bool
    max_body_bytes: int
    caps: dict[str, int]
    audit_path: str
    audit_prompts: bool
    secrets_path: str | None
    keys: tuple[ApiKeyRecord, ...]
    models: tuple[ModelInfo, ...] = field(default=())
    ready_cache_seconds: float = 5.0
    ready_timeout_seconds: float = 60.0
    pii: PiiOptions | None = None  # PII masking, None when PII_ENABLED is off

    @classmethod
    def from_config(
        cls,
        config: ApplianceConfig,
        *,
        audit_path: str,
        models: tuple[ModelInfo, ...],
        secrets_path: str | None = None,
    ) -> IngressConfig:
        settings = config.settings
        return cls(
            auth_enabled=settings.auth_enabled,
            max_body_bytes=settings.max_request_body_mb * 1024 * 1024,
            caps={m.id: m.max_tokens_cap for m in config.models},
            audit_path=audit_path,
            audit_prompts=settings.audit_log_prompts,  # with PII on, the gate logs only the masked prompt
            secrets_path=secrets_path,
            keys=config.secrets.api_keys,
            models=models,
            pii=options_from_settings(settings) if settings.pii_enabled else None,
        )
