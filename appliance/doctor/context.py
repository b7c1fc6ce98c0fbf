"""What every check may read: the loaded config (or why it failed), where the engine is, the stack's URLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from appliance.config import ApplianceConfig, ConfigFiles
from appliance.config.issues import ConfigIssue


@dataclass
class DoctorContext:
    files: ConfigFiles
    config: ApplianceConfig | None
    config_issues: list[ConfigIssue] = field(default_factory=list)
    preflight: bool = False  # only the checks that need no running stack
    docker_host: str | None = None
    health_url: str = "http://127.0.0.1:8000/health/ready"
    prometheus_url: str = "http://127.0.0.1:9090"
    model_cache: Path | None = None  # the Hugging Face hub cache (default: HF_HUB_CACHE / HF_HOME / ~/.cache)
    now: datetime = field(default_factory=lambda: datetime.now(tz=UTC))
