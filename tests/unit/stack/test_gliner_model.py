"""PII_NER=gliner from .env to the image: the settings validated at load (errors name the key), the build args
`make up` hands to compose, the label the image keeps, and `up`/doctor comparing it with the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from appliance.config import ConfigFiles, load_config
from appliance.config.loader import ApplianceConfig
from appliance.config.settings import Settings
from appliance.errors import ConfigError
from appliance.serve.pii.gliner import IMAGE_DIR
from appliance.stack.pii_model import GLINER_MODEL_LABEL, gliner_build_args, gliner_model_problem, gliner_pin
from appliance.stack.plan import plan_stack
from tests.helpers import ROOT, make_config_dir, set_line

REPO, COMMIT, DIGEST = "org/gliner-pii", "0123456789abcdef0123456789abcdef01234567", "ab" * 32
PINNED = {
    "PII_ENABLED": "true",
    "PII_NER": "gliner",
    "PII_GLINER_MODEL": REPO,
    "PII_GLINER_REVISION": COMMIT,
    "PII_GLINER_SHA256": DIGEST,
}


def load(tmp_path: Path, gpu_count: int = 1, **settings: str) -> ApplianceConfig:
    make_config_dir(tmp_path)
    for key, value in settings.items():
        set_line(tmp_path / ".env", key, value)
    files = ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets", models=tmp_path / "models.yaml")
    return load_config(files, gpu_count=gpu_count)


def errors(tmp_path: Path, gpu_count: int = 1, **settings: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, gpu_count, **settings)
    return {issue.key: issue.render() for issue in caught.value.issues if issue.is_error}


def test_spacy_is_the_default_and_needs_no_pin(tmp_path: Path) -> None:
    config = load(tmp_path, PII_ENABLED="true")
    assert config.settings.pii_ner.value == "spacy" and gliner_pin(config.settings) == ""
    assert set(gliner_build_args(config.settings).values()) == {""}  # the image fetches no GLiNER model


def test_a_repo_id_must_be_pinned_by_commit_and_digest(tmp_path: Path) -> None:
    found = errors(tmp_path, PII_ENABLED="true", PII_NER="gliner")
    assert "PII_GLINER_REVISION" in found and "PII_GLINER_SHA256" in found
    assert load(tmp_path, **PINNED).settings.pii_gliner_threshold == 0.5
    assert load(tmp_path, PII_ENABLED="true", PII_NER="gliner", PII_GLINER_MODEL="/appliance/models/gliner")


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("PII_NER", "flair", "'spacy' or 'gliner'"),
        ("PII_GLINER_REVISION", "main", "commit hash"),
        ("PII_GLINER_SHA256", "abc", "64 hex"),
        ("PII_GLINER_MODEL", "not a repo", "repo id"),
        ("PII_GLINER_LABELS", "person=PEOPLE", "'PEOPLE' is not one"),
        ("PII_GLINER_LABELS", "person", "label=TYPE"),
        ("PII_GLINER_BACKBONE", "microsoft/mdeberta-v3-base", "ORG/NAME@"),
        ("PII_GLINER_THRESHOLD", "1.5", ""),
        ("PII_GLINER_DEVICE", "tpu", "'cuda' or 'cpu'"),
    ],
)
def test_bad_values_are_errors_naming_the_key(tmp_path: Path, key: str, value: str, says: str) -> None:
    found = errors(tmp_path, **{**PINNED, key: value})
    assert key in found and says in found[key], found


def test_cuda_without_a_gpu_is_an_error_naming_the_device(tmp_path: Path) -> None:
    found = errors(tmp_path, gpu_count=0, **PINNED)
    assert "PII_GLINER_DEVICE" in found and "without a GPU" in found["PII_GLINER_DEVICE"]
    assert load(tmp_path, gpu_count=0, **PINNED, PII_GLINER_DEVICE="cpu")


def test_labels_for_types_not_masked_are_a_warning(tmp_path: Path) -> None:
    config = load(tmp_path, **PINNED, PII_ENTITIES="PERSON,EMAIL_ADDRESS")
    assert [w.key for w in config.warnings if w.key == "PII_GLINER_LABELS"]


def test_build_args_reach_compose_and_the_image_keeps_the_pin(tmp_path: Path) -> None:
    config = load(tmp_path, **PINNED, PII_GLINER_BACKBONE=f"microsoft/mdeberta-v3-base@{COMMIT}")
    env = plan_stack(config, rendered={}, euid=1000, egid=1000).env
    assert env["APPLIANCE_GLINER_MODEL"] == REPO and env["APPLIANCE_GLINER_REVISION"] == COMMIT
    assert env["APPLIANCE_GLINER_SHA256"] == DIGEST
    assert env["APPLIANCE_GLINER_BACKBONE"] == f"microsoft/mdeberta-v3-base@{COMMIT}"
    args = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["serve"]["build"]["args"]
    for name in ("MODEL", "REVISION", "SHA256", "BACKBONE"):
        assert args[f"GLINER_{name}"] == f"${{APPLIANCE_GLINER_{name}:-}}"
    dockerfile = (ROOT / "compose/serve/Dockerfile").read_text()
    assert f'LABEL {GLINER_MODEL_LABEL}="${{GLINER_MODEL:+${{GLINER_MODEL}}@${{GLINER_REVISION}}}}"' in dockerfile
    assert f"--dest {IMAGE_DIR}" in dockerfile and "pii-gliner" in dockerfile
    # an operator's own directory is not fetched
    local = Settings(PII_ENABLED=True, PII_NER="gliner", PII_GLINER_MODEL="/appliance/models/g")
    assert set(gliner_build_args(local).values()) == {""}


def test_up_and_doctor_compare_the_label_with_the_settings() -> None:
    settings = Settings(**{key: value for key, value in PINNED.items()})
    image = "appliance-serve:latest"
    assert gliner_model_problem(settings, image, {GLINER_MODEL_LABEL: f"{REPO}@{COMMIT}"}) is None
    assert gliner_model_problem(settings, image, None) is None  # not built yet: up checks after building
    for carried in ({GLINER_MODEL_LABEL: ""}, {}, {GLINER_MODEL_LABEL: f"{REPO}@{'f' * 40}"}):
        problem = gliner_model_problem(settings, image, carried)
        assert problem is not None and "rebuild" in problem and f"{REPO}@{COMMIT}" in problem
    assert gliner_model_problem(Settings(PII_ENABLED=True), image, {}) is None  # spaCy: nothing to carry
