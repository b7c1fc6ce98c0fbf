"""The examples and the guide are generated from the typed models and must be in sync with them."""

from appliance.config.reference import render_env_example, render_reference, render_secrets_example
from appliance.config.secrets import secret_names
from appliance.config.settings import setting_names
from tests.helpers import ROOT

REGENERATE = "run: python -m appliance config --write"


def test_env_example_is_generated_from_settings() -> None:
    assert (ROOT / ".env.example").read_text() == render_env_example(), REGENERATE


def test_secrets_example_is_generated_from_secrets() -> None:
    assert (ROOT / ".secrets.example").read_text() == render_secrets_example(), REGENERATE


def test_guide_documents_every_setting() -> None:
    guide = (ROOT / "docs/guides/configurator.md").read_text()
    assert render_reference() in guide, REGENERATE
    for key in [*setting_names(), *secret_names()]:
        assert f"| `{key}` |" in guide


def test_every_setting_has_a_default_and_a_meaning_in_env_example() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for key in setting_names():
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key}="))
        assert lines[index - 1].startswith("# ") and len(lines[index - 1]) > 10, key


def test_guide_documents_every_model_key() -> None:
    from appliance.config.models import AutoscalingSpec, ModelSpec

    guide = (ROOT / "docs/guides/configurator.md").read_text()
    names = [*ModelSpec.model_fields, *(f"autoscaling.{n}" for n in AutoscalingSpec.model_fields)]
    for name in names:
        assert f"| `{name}` |" in guide, name
