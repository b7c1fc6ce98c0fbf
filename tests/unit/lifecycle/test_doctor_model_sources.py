"""`doctor`'s model-sources check: the same problems as validate, as errors, each with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.doctor.checks import all_checks
from appliance.doctor.checks.model_sources import ModelSources
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Level
from appliance.lifecycle.integrity import ModelToVerify, verify_model
from appliance.lifecycle.manifest import ManifestStore
from tests.helpers import make_config_dir
from tests.unit.lifecycle.conftest import write_model


def ctx_for(root: Path, models: str) -> DoctorContext:
    make_config_dir(root)
    (root / "models.yaml").write_text("models:\n" + models)
    files = ConfigFiles(env=root / ".env", secrets=root / ".secrets", models=root / "models.yaml")
    return DoctorContext(files=files, config=load_config(files, gpu_count=0), preflight=True)


def test_listed_among_the_preflight_checks() -> None:
    assert any(isinstance(c, ModelSources) and not c.needs_stack for c in all_checks())


def test_hub_models_only_the_check_does_not_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert not ModelSources().applies(ctx_for(tmp_path, "  - id: q\n    source: Qwen/Qwen2.5-0.5B-Instruct\n"))


def test_problems_are_errors_with_fixes_and_a_clean_state_is_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_model(tmp_path / "models" / "tiny")
    (tmp_path / "models" / "tiny" / "weights.pt").write_bytes(b"pickle")
    ctx = ctx_for(
        tmp_path, "  - id: tiny\n    source: /appliance/models/tiny\n  - id: gone\n    source: /appliance/models/gone\n"
    )
    findings = ModelSources().run(ctx)
    assert [(f.level, f.title) for f in findings] == [
        (Level.ERROR, "model tiny: allow_pickle_weights"),
        (Level.ERROR, "model gone: source"),
    ]
    assert "weights.pt" in findings[0].found and "allow_pickle_weights: true" in findings[0].fix
    (tmp_path / "models" / "tiny" / "weights.pt").unlink()
    write_model(tmp_path / "models" / "gone")
    verify_model(
        ModelToVerify("tiny", "/appliance/models/tiny", None, False),
        ManifestStore(tmp_path / "data" / "registry" / "manifests"),
        now="t",
    )
    [finding] = ModelSources().run(ctx)
    assert finding.level is Level.OK
    assert (
        finding.found
        == "1 with a manifest that lists every file, 1 without a manifest yet (written when it first loads)"
    )
