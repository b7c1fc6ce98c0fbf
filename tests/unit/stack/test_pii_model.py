"""The spaCy model serve loads against the one its image carries: local mode configures the small model the
local images carry; any other mismatch stops `up` and is an error in doctor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from appliance.config import ConfigFiles, load_config
from appliance.config.dotenv import parse_dotenv
from appliance.config.settings import Settings
from appliance.stack.pii_model import (
    DEFAULT_SPACY_MODEL,
    LOCAL_SPACY_MODEL,
    SPACY_MODEL_LABEL,
    serve_spacy_model,
    spacy_model_problem,
    with_setting,
)
from appliance.stack.render import render_run_dir
from tests.helpers import ROOT, make_config_dir, set_line


def test_the_constants_are_the_ones_the_image_files_use() -> None:
    assert Settings.model_fields["pii_spacy_model"].default == DEFAULT_SPACY_MODEL
    dockerfile = (ROOT / "compose/serve/Dockerfile").read_text()
    assert f"ARG SPACY_MODULE={DEFAULT_SPACY_MODEL}\n" in dockerfile
    assert f'LABEL {SPACY_MODEL_LABEL}="${{SPACY_MODULE}}"' in dockerfile
    local = yaml.safe_load((ROOT / "compose/local.yml").read_text())
    assert local["services"]["serve"]["build"]["args"]["SPACY_MODULE"] == LOCAL_SPACY_MODEL


def test_local_mode_configures_the_model_the_local_images_carry() -> None:
    assert serve_spacy_model(DEFAULT_SPACY_MODEL, local=True) == LOCAL_SPACY_MODEL
    assert serve_spacy_model(DEFAULT_SPACY_MODEL, local=False) == DEFAULT_SPACY_MODEL
    assert serve_spacy_model("en_core_web_md", local=True) == "en_core_web_md"  # chosen on purpose: kept


def test_a_mismatch_says_what_the_image_carries_and_how_to_fix_it() -> None:
    assert spacy_model_problem("en_core_web_lg", "a-serve:latest", {SPACY_MODEL_LABEL: "en_core_web_lg"}) is None
    assert spacy_model_problem("en_core_web_lg", "a-serve:latest", None) is None  # not built yet
    problem = spacy_model_problem("en_core_web_lg", "a-serve:latest", {SPACY_MODEL_LABEL: LOCAL_SPACY_MODEL})
    assert problem is not None and f"set PII_SPACY_MODEL={LOCAL_SPACY_MODEL} in .env" in problem
    assert "rebuild" in (spacy_model_problem("x", "a-serve:latest", {}) or "")


def test_with_setting_replaces_or_appends_one_line() -> None:
    assert (
        with_setting(b"A=1\nPII_SPACY_MODEL=en_core_web_lg\nB=2\n", "PII_SPACY_MODEL", "m")
        == b"A=1\nPII_SPACY_MODEL=m\nB=2\n"
    )
    assert with_setting(b"A=1\n", "PII_SPACY_MODEL", "m") == b"A=1\nPII_SPACY_MODEL=m\n"


@pytest.mark.parametrize(("local", "expected"), [(True, LOCAL_SPACY_MODEL), (False, DEFAULT_SPACY_MODEL)])
def test_serve_is_told_the_local_model_in_local_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: bool, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    make_config_dir(tmp_path)
    set_line(tmp_path / ".env", "PII_ENABLED", "true")
    config = load_config(
        ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets", models=tmp_path / "models.yaml"), gpu_count=0
    )
    run = tmp_path / "data/run"
    render_run_dir(config, version="1.0", run_dir=run, certs_dir=tmp_path / "certs", local=local)
    text = (run / "serve/settings.env").read_text()
    assert len(re.findall(r"^PII_SPACY_MODEL=", text, re.M)) == 1
    parsed = parse_dotenv(text, "settings.env")
    assert parsed.issues == [] and parsed.values()["PII_SPACY_MODEL"] == expected
