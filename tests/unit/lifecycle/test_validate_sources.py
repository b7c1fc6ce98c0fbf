"""`validate` reports, before anything starts, a local source that is missing or has no config.json, pickle
weights without allow_pickle_weights, and files the manifest does not cover; the serve-container path
/appliance/models/NAME is looked up under the project's models/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.lifecycle.integrity import ModelToVerify, verify_model
from appliance.lifecycle.manifest import ManifestStore
from appliance.lifecycle.sources import local_model_dir, observe_source, source_problems
from tests.helpers import make_config_dir, run_cli, set_line
from tests.unit.lifecycle.conftest import write_model


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "0")
    make_config_dir(tmp_path)
    set_line(tmp_path / ".env", "ACCELERATOR", "cpu")
    return tmp_path


def models_yaml(root: Path, *entries: str) -> None:
    (root / "models.yaml").write_text("models:\n" + "".join(entries))


def entry(model_id: str, source: str, extra: str = "") -> str:
    return f"  - id: {model_id}\n    source: {source}\n{extra}"


def validate(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict]]:
    code, out, _err = run_cli(capsys, "validate", "--json")
    return code, json.loads(out)["issues"]


def test_container_paths_are_looked_up_under_the_project_models_dir(tmp_path: Path) -> None:
    write_model(tmp_path / "models" / "tiny")
    assert local_model_dir("/appliance/models/tiny", tmp_path) == tmp_path / "models" / "tiny"
    assert local_model_dir(str(tmp_path / "models" / "tiny")) == tmp_path / "models" / "tiny"
    assert local_model_dir("/srv/elsewhere", tmp_path) == Path("/srv/elsewhere")
    assert local_model_dir("org/name", tmp_path) is None
    facts = observe_source("/appliance/models/tiny", project_dir=tmp_path)
    assert facts.exists and facts.has_config and source_problems(facts, allow_pickle_weights=False) == []


def test_a_good_local_model_and_a_hub_model_have_no_issue(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_model(project / "models" / "tiny")
    models_yaml(project, entry("tiny", "/appliance/models/tiny"), entry("qwen", "Qwen/Qwen2.5-0.5B-Instruct"))
    code, issues = validate(capsys)
    assert code == 0 and not [i for i in issues if i["key"].startswith("models[")]


def test_validate_reports_each_source_problem(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_model(project / "models" / "pickled")
    (project / "models" / "pickled" / "pytorch_model.bin").write_bytes(b"pickle")
    write_model(project / "models" / "noconfig")
    (project / "models" / "noconfig" / "config.json").unlink()
    grown = write_model(project / "models" / "grown")
    verify_model(
        ModelToVerify("grown", "/appliance/models/grown", None, False),
        ManifestStore(project / "data" / "registry" / "manifests"),
        now="t",
    )
    (grown / "model-00002-of-00002.safetensors").write_bytes(b"added later")
    models_yaml(
        project,
        entry("absent", "/appliance/models/absent"),
        entry("pickled", "/appliance/models/pickled"),
        entry("noconfig", "/appliance/models/noconfig"),
        entry("grown", "/appliance/models/grown"),
        entry("allowed", "/appliance/models/pickled", "    allow_pickle_weights: true\n"),
    )
    code, issues = validate(capsys)
    assert code == 0, "warnings: the serve container refuses the load itself; doctor reports them as errors"
    by_key = {(i["key"], i["severity"]): i for i in issues if i["key"].startswith("models[")}
    assert set(by_key) == {
        ("models[0].source", "warning"),
        ("models[1].allow_pickle_weights", "warning"),
        ("models[2].source", "warning"),
        ("models[3].source", "warning"),
    }
    assert "nothing at" in by_key[("models[0].source", "warning")]["message"]
    assert "pytorch_model.bin" in by_key[("models[1].allow_pickle_weights", "warning")]["message"]
    assert "config.json" in by_key[("models[2].source", "warning")]["message"]
    grown_issue = by_key[("models[3].source", "warning")]
    assert "does not cover: model-00002-of-00002.safetensors" in grown_issue["message"]
    assert "REGISTRY_MANIFEST_DIR" in grown_issue["hint"]


def test_registry_url_password_is_refused_and_never_shown(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_line(project / ".env", "REGISTRY_URL", "postgresql://app:hunter2secret@db.internal/registry")
    code, out, err = run_cli(capsys, "validate")
    assert code == 2 and "REGISTRY_URL" in err and "no password" in err and ".pgpass" in err
    assert "hunter2secret" not in out + err
    set_line(project / ".env", "REGISTRY_URL", "mysql://db/registry")
    code, _out, err = run_cli(capsys, "validate")
    assert code == 2 and "a sqlite:/// or postgresql:// URL" in err
