"""``.env.example``, ``.secrets.example`` and the guide's settings table, rendered from the typed models.

The models are the single source: a test checks the committed files equal what is rendered here, so a new
setting cannot land without its default and meaning in both places.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from appliance.config.models import AutoscalingSpec, ModelSpec, PoolingSpec, RequestLimitsSpec
from appliance.config.secrets import Secrets
from appliance.config.settings import Settings

_ENV_HEADER = """\
# Settings of the appliance (non-secret). Copy to .env; `make up` does this when .env is missing.
# Every line shows the default. Secrets (passwords, API key hashes, the Datadog key) go in .secrets.
# Check with: python -m appliance validate
# Reference: docs/guides/configurator.md (generated from appliance/config/settings.py).
"""
_SECRETS_HEADER = """\
# Secrets of the appliance. Copy to .secrets with mode 0600; `make up` does this and fills in generated
# passwords. Never commit .secrets. API keys are added with: python -m appliance keys create NAME
# and stored only as SHA-256 hashes, one line per key:
#   API_KEY_<NAME>=sha256:<64 hex digits>;role=admin|user;models=<model ids, comma-separated, or *>
# optionally followed by budgets (absent = unlimited): ;rpm=N;tpm=N;tokens_per_day=N  (keys create/update)
"""
GUIDE_BEGIN = "<!-- BEGIN GENERATED SETTINGS (python -m appliance config reference) -->"
GUIDE_END = "<!-- END GENERATED SETTINGS -->"


def _fields(model: type[BaseModel]) -> Iterator[tuple[str, str, FieldInfo]]:
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if "group" in extra:
            yield name.upper(), str(extra["group"]), info


def format_default(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _choices(info: FieldInfo) -> list[str]:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return [str(c) for c in extra.get("choices", [])]  # type: ignore[union-attr]


def _render_env(model: type[BaseModel], header: str) -> str:
    lines = [header.rstrip("\n")]
    group = None
    for key, field_group, info in _fields(model):
        if field_group != group:
            group = field_group
            lines += ["", f"# --- {group} " + "-" * max(3, 96 - len(group))]
        choices = _choices(info)
        lines.append(f"# {info.description}" + (f" One of: {', '.join(choices)}." if choices else ""))
        lines.append(f"{key}={format_default(info.default)}")
    return "\n".join(lines) + "\n"


def render_env_example() -> str:
    return _render_env(Settings, _ENV_HEADER)


def render_secrets_example() -> str:
    return _render_env(Secrets, _SECRETS_HEADER)


def render_reference() -> str:
    """The Markdown tables of every setting and secret, grouped, for docs/guides/configurator.md."""
    out = [GUIDE_BEGIN]
    for title, model, file in (("Settings", Settings, ".env"), ("Secrets", Secrets, ".secrets")):
        out.append(f"\n### {title} (`{file}`)\n")
        group = None
        for key, field_group, info in _fields(model):
            if field_group != group:
                group = field_group
                out += [f"\n#### {group}\n", "| Setting | Default | Meaning |", "|---|---|---|"]
            default = format_default(info.default)
            choices = _choices(info)
            meaning = str(info.description) + (f" One of: {', '.join(f'`{c}`' for c in choices)}." if choices else "")
            out.append(f"| `{key}` | {f'`{default}`' if default else '(empty)'} | {meaning} |")
    out += [
        "\n### `models.yaml`\n",
        "Each entry of the `models:` list:\n",
        "| Key | Default | Meaning |",
        "|---|---|---|",
    ]
    out += _model_rows(ModelSpec, "")
    out += _model_rows(AutoscalingSpec, "autoscaling.")
    out += _model_rows(RequestLimitsSpec, "request_limits.")
    out += _model_rows(PoolingSpec, "pooling.")
    out.append("\n" + GUIDE_END)
    return "\n".join(out)


def _model_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        if info.is_required():
            default = "(required)"
        elif info.default_factory is not None:
            default = "`{}`"
        else:
            default = "(none)" if info.default is None else f"`{format_default(info.default)}`"
        rows.append(f"| `{prefix}{name}` | {default} | {info.description} |")
    return rows


def splice_reference(guide: str) -> str:
    """``guide`` with the text between the generated markers replaced by :func:`render_reference`."""
    start, end = guide.index(GUIDE_BEGIN), guide.index(GUIDE_END) + len(GUIDE_END)
    return guide[:start] + render_reference() + guide[end:]
