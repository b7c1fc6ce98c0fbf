"""Whatever text the three files hold, loading raises nothing but the project's own ConfigError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config import ConfigFiles, load_config
from appliance.config.settings import setting_names
from appliance.errors import ConfigError

KEYS = [*setting_names(), "API_KEY_X", "DATADOG_API_KEY", "GRAFANA_ADMIN_PASSWORD", "lower", "1BAD"]
VALUES = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "80",
            "443",
            "1.5",
            "nan",
            "inf",
            "true",
            "acme",
            "provided",
            "gpu",
            "*",
            '"unterminated',
            "'x'",
            '"a" b',
            "sha256:" + "a" * 64 + ";role=user;models=*",
        ]
    ),
)
ENV_LINE = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), VALUES),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
)
ENV_TEXT = st.lists(ENV_LINE, max_size=12).map("\n".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(), st.text(max_size=12))
MODEL_KEYS = [
    "id",
    "source",
    "revision",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "replicas",
    "autoscaling",
    "dtype",
    "engine_kwargs",
    "max_model_len",
    "unknown",
]
MODEL = st.dictionaries(st.sampled_from(MODEL_KEYS), st.one_of(SCALARS, st.dictionaries(st.text(max_size=5), SCALARS)))
YAML_DATA = st.one_of(
    st.builds(lambda ms: {"models": ms}, st.lists(st.one_of(MODEL, SCALARS), max_size=3)),
    st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner)),
)
YAML_TEXT = st.one_of(YAML_DATA.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), st.text(max_size=80))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=ENV_TEXT, secrets=ENV_TEXT, models=YAML_TEXT, gpus=st.sampled_from([None, 0, 1, 8]))
def test_loading_random_files_only_ever_raises_config_error(env: str, secrets: str, models: str, gpus) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = ConfigFiles(env=root / ".env", secrets=root / ".secrets", models=root / "m.yaml", models_required=True)
        files.env.write_text(env, encoding="utf-8")
        files.secrets.write_text(secrets, encoding="utf-8")
        files.models.write_text(models, encoding="utf-8")
        try:
            config = load_config(files, gpu_count=gpus)
        except ConfigError as err:
            assert err.issues, "a ConfigError always carries its issues"
            for issue in err.issues:
                assert issue.render().startswith(f"{issue.file}:{issue.key}: ")
        else:
            assert config.models
