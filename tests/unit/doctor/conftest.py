"""A doctor context from a real config directory, and fake nvidia-smi output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.doctor import probes
from appliance.doctor.context import DoctorContext
from appliance.errors import ConfigError
from tests.helpers import make_config_dir, set_line

# index, name, memory.total, memory.free, driver_version (MiB) — an RTX 4090-like GPU
ONE_GPU = "0, NVIDIA GeForce RTX 4090, 24564, 24000, 550.54.15\n"
TWO_GPUS = ONE_GPU + "1, NVIDIA GeForce RTX 4090, 24564, 23900, 550.54.15\n"


@pytest.fixture
def make_ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., DoctorContext]:
    def make(
        gpu_count: int = 0, models_yaml: str | None = None, secrets: dict[str, str] | None = None, **settings: str
    ) -> DoctorContext:
        make_config_dir(tmp_path)
        for key, value in settings.items():
            set_line(tmp_path / ".env", key, value)
        for key, value in (secrets or {}).items():
            set_line(tmp_path / ".secrets", key, value)
        files = ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets", models=tmp_path / "models.yaml")
        if models_yaml is not None:
            (tmp_path / "models.yaml").write_text(models_yaml)
        try:
            config, issues = load_config(files, gpu_count=gpu_count), []
        except ConfigError as err:
            config, issues = None, err.issues
        return DoctorContext(files=files, config=config, config_issues=issues, model_cache=tmp_path / "hub")

    return make


@pytest.fixture
def nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> Callable[[str | None], None]:
    """Patch the one subprocess call the GPU checks make."""

    def fake(output: str | None) -> None:
        monkeypatch.setattr(probes, "nvidia_smi_query", lambda timeout=5.0: output)

    return fake
