"""Loading the whole configuration at the edge: read, parse, type, check rules; report every issue at once."""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance.config.convert import issues_from_validation_error, validate_partial
from appliance.config.dotenv import ParsedEnv, parse_dotenv
from appliance.config.issues import ConfigIssue, Redactor, Severity, describe_found, unknown_key_issue
from appliance.config.models import AutoscalingSpec, ModelSpec, model_from_settings
from appliance.config.rules import Where, check_rules, resolve_accelerator
from appliance.config.secrets import API_KEY_PREFIX, Secrets, parse_api_keys, secret_names
from appliance.config.settings import Accelerator, Settings, setting_names
from appliance.config.yamlfile import YamlDocument, format_path, load_yaml
from appliance.errors import ConfigError
from appliance.logs.setup import register_secret

_LOGGER = logging.getLogger(__name__)

DEFAULT_ENV = Path(".env")
DEFAULT_SECRETS = Path(".secrets")
DEFAULT_MODELS = Path("models.yaml")

IndexedModels = list[tuple[int, ModelSpec]]

NOT_SECRET = frozenset({"DASHBOARD_USER"})  # kept in .secrets beside its password, but shown freely


@dataclass(frozen=True)
class ConfigFiles:
    """Where the three sources are. ``models_required``: the models file was named explicitly."""

    env: Path = DEFAULT_ENV
    secrets: Path = DEFAULT_SECRETS
    models: Path = DEFAULT_MODELS
    models_required: bool = False


@dataclass(frozen=True)
class ApplianceConfig:
    """The validated configuration. Deep code trusts it."""

    settings: Settings
    secrets: Secrets
    models: tuple[ModelSpec, ...]
    accelerator: Accelerator  # resolved: gpu or cpu
    gpu_count: int | None
    files: ConfigFiles
    models_from_yaml: bool
    warnings: tuple[ConfigIssue, ...] = field(default=())

    def redactor(self) -> Redactor:
        return Redactor(self.secrets.secret_values())

    def model(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)


def read_text(path: Path, label: str) -> tuple[str | None, list[ConfigIssue]]:
    """A file's text, or an issue that says why it cannot be read (never an exception)."""
    try:
        return path.read_bytes().decode("utf-8"), []
    except FileNotFoundError:
        return None, [
            ConfigIssue.mismatch(label, "(file)", "the file to exist", "no such file", hint=_missing_hint(path))
        ]
    except IsADirectoryError:
        return None, [ConfigIssue.mismatch(label, "(file)", "a file", "a directory")]
    except PermissionError:
        return None, [
            ConfigIssue.mismatch(
                label, "(file)", "a readable file", "permission denied", hint="run as the file's owner, or fix its mode"
            )
        ]
    except UnicodeDecodeError as err:
        return None, [
            ConfigIssue.mismatch(label, "(file)", "UTF-8 text", f"a byte that is not UTF-8 at offset {err.start}")
        ]
    except OSError as err:
        return None, [ConfigIssue.mismatch(label, "(file)", "a readable file", err.strerror or "an OS error")]


def _missing_hint(path: Path) -> str:
    example = {".env": ".env.example", ".secrets": ".secrets.example", "models.yaml": "models.example.yaml"}
    source = example.get(path.name)
    return f"copy {source} to {path} (make up does this for you)" if source else ""


def load_config(files: ConfigFiles = ConfigFiles(), *, gpu_count: int | None = None) -> ApplianceConfig:
    """Load and check everything. Raises :class:`ConfigError` with every error found; warnings ride along."""
    env_label, secrets_label, models_label = str(files.env), str(files.secrets), str(files.models)
    issues: list[ConfigIssue] = []

    env_text, problems = read_text(files.env, env_label)
    issues += problems
    env = parse_dotenv(env_text or "", env_label)
    issues += env.issues
    settings = _typed_settings(env, env_label, issues)

    secrets_text, problems = read_text(files.secrets, secrets_label)
    issues += problems
    parsed_secrets = parse_dotenv(secrets_text or "", secrets_label, secret=True)
    issues += parsed_secrets.issues
    secrets = _typed_secrets(parsed_secrets, secrets_label, issues)
    for name, entry in parsed_secrets.entries.items():  # passwords and tokens never reach a log line
        # API keys are stored as hashes: nothing to hide; the dashboard user name is a name, not a secret (its
        # default, "admin", scrubbed from every log line turned "an admin key" into "an <redacted> key")
        if not name.startswith(API_KEY_PREFIX) and name not in NOT_SECRET:
            register_secret(entry.value)
    if secrets_text is not None:
        issues += _secrets_mode(files.secrets, secrets_label)

    models_from_yaml = files.models_required or files.models.exists()
    doc: YamlDocument | None = None
    models: IndexedModels | None
    if models_from_yaml:
        models, doc = _typed_models(files.models, models_label, issues)
    else:
        models = [(0, model_from_settings(settings))]

    where = Where(
        env_file=env_label,
        secrets_file=secrets_label,
        models_file=models_label if models_from_yaml else env_label,
        env_line=env.line_of,
        secrets_line=parsed_secrets.line_of,
        model_line=doc.line_of if doc else (lambda _path: None),
        models_from_yaml=models_from_yaml,
    )
    already = {issue.location() for issue in issues}
    rule_issues = check_rules(
        settings,
        secrets,
        models or [],
        where=where,
        gpu_count=gpu_count,
        sources=_observe_sources(models or [], settings),
    )
    if models_from_yaml:
        rule_issues += _ignored_model_settings(env, settings, env_label, models_label)
    issues += [issue for issue in rule_issues if issue.location() not in already]

    redact = Redactor([*secrets.secret_values(), *_raw_secret_values(parsed_secrets)])
    issues = [redact.issue(i) for i in issues]
    if any(i.is_error for i in issues) or models is None:
        raise ConfigError(issues)
    return ApplianceConfig(
        settings=settings,
        secrets=secrets,
        models=tuple(model for _index, model in models),
        accelerator=resolve_accelerator(settings.accelerator, gpu_count),
        gpu_count=gpu_count,
        files=files,
        models_from_yaml=models_from_yaml,
        warnings=tuple(issues),
    )


def _observe_sources(models: IndexedModels, settings: Settings) -> dict[int, Any]:
    """What is on disk for each local model source (for the rules; nothing is hashed)."""
    from appliance.lifecycle.integrity import observe_with_manifest
    from appliance.lifecycle.manifest import ManifestStore

    manifests = ManifestStore(Path(settings.registry_manifest_dir))
    return {index: observe_with_manifest(model.source, manifests) for index, model in models}


def _typed_settings(env: ParsedEnv, label: str, issues: list[ConfigIssue]) -> Settings:
    """The typed settings; keys with errors fall back to their defaults so the cross-field rules still run
    over the rest (rule issues on keys that already have one are dropped by the caller)."""
    settings, problems = validate_partial(
        Settings,
        env.values(),
        lambda err: issues_from_validation_error(
            err,
            label,
            known_for=lambda _loc: setting_names(),
            format_key=lambda loc: str(loc[0]),
            line_of=lambda loc: env.line_of(str(loc[0])),
        ),
        by_alias=True,
        by_name=False,
    )
    issues += problems
    return settings or Settings()


def _typed_secrets(parsed: ParsedEnv, label: str, issues: list[ConfigIssue]) -> Secrets:
    keys, failures = parse_api_keys((key, entry.value) for key, entry in parsed.entries.items())
    for key, err in failures:
        issues.append(
            ConfigIssue.mismatch(
                label,
                key,
                err.expected,
                "<redacted>",
                line=parsed.line_of(key),
                hint="recreate it: python -m appliance keys create NAME",
            )
        )
    fixed: dict[str, Any] = {}
    for key, entry in parsed.entries.items():
        if key in secret_names():
            fixed[key] = entry.value
        elif not key.startswith(API_KEY_PREFIX):
            issues.append(unknown_key_issue(label, key, [*secret_names(), "API_KEY_<NAME>"], line=entry.line))
    secrets, problems = validate_partial(
        Secrets,
        {**fixed, "API_KEYS": tuple(keys)},
        lambda err: issues_from_validation_error(
            err,
            label,
            known_for=lambda _loc: secret_names(),
            format_key=lambda loc: str(loc[0]),
            line_of=lambda loc: parsed.line_of(str(loc[0])),
            secret=True,
        ),
        by_alias=True,
        by_name=False,
    )
    issues += problems
    return secrets or Secrets()


def _raw_secret_values(parsed: ParsedEnv) -> list[str]:
    """Every value in the secrets file that is a secret (all but the dashboard user name)."""
    return [e.value for e in parsed.entries.values() if e.value and e.key != "DASHBOARD_USER"]


def _secrets_mode(path: Path, label: str) -> list[ConfigIssue]:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return []
    if mode & 0o077:
        return [
            ConfigIssue.mismatch(
                label,
                "(file)",
                "mode 0600 (owner only)",
                f"mode {mode:04o}",
                hint=f"chmod 600 {path}",
                severity=Severity.WARNING,
            )
        ]
    return []


_MODEL_FIELDS = {
    ("models", 0): list(ModelSpec.model_fields),
    ("models", 0, "autoscaling"): list(AutoscalingSpec.model_fields),
}


def _known_model_keys(loc: tuple[Any, ...]) -> list[str]:
    parent = tuple(0 if isinstance(part, int) else part for part in loc[:-1])
    return _MODEL_FIELDS.get(parent, [])


def _typed_models(
    path: Path, label: str, issues: list[ConfigIssue]
) -> tuple[IndexedModels | None, YamlDocument | None]:
    """The valid models with their positions in the file; each invalid one adds its issues and is left out."""
    text, problems = read_text(path, label)
    issues += problems
    if text is None:
        return None, None
    doc, problems = load_yaml(text, label)
    issues += problems
    if doc is None:
        return None, None
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("models"), list) or not data["models"]:
        found = (
            "an empty file" if data is None else describe_found(data.get("models") if isinstance(data, dict) else data)
        )
        key = "models" if isinstance(data, dict) else "(top level)"
        issues.append(
            ConfigIssue.mismatch(
                label,
                key,
                "a mapping with a non-empty 'models:' list",
                found,
                hint="see models.example.yaml",
                line=doc.line_of(("models",)),
            )
        )
        return None, doc
    for extra in [k for k in data if k != "models"]:
        issues.append(unknown_key_issue(label, str(extra), ["models"], what="key", line=doc.line_of((extra,))))
    models: IndexedModels = []
    for index, item in enumerate(data["models"]):
        if not isinstance(item, dict):
            issues.append(
                ConfigIssue.mismatch(
                    label,
                    f"models[{index}]",
                    "a mapping with id, source, …",
                    describe_found(item),
                    line=doc.line_of(("models", index)),
                )
            )
            continue

        def to_issues(err: ValidationError, i: int = index) -> list[ConfigIssue]:
            return issues_from_validation_error(
                err,
                label,
                known_for=lambda loc: _known_model_keys(("models", 0, *loc)),
                format_key=lambda loc: format_path(("models", i, *loc)),
                line_of=lambda loc: doc.line_of(("models", i, *loc)),
                what="key",
            )

        model, problems = validate_partial(ModelSpec, item, to_issues)
        issues += problems
        if model is not None:
            models.append((index, model))
    return models, doc


def _ignored_model_settings(env: ParsedEnv, settings: Settings, env_label: str, models_label: str) -> list[ConfigIssue]:
    """MODEL_* keys changed from their defaults have no effect when models.yaml is used: say so."""
    changed = []
    for name, info in Settings.model_fields.items():
        key = name.upper()
        if key.startswith("MODEL_") and key in env.entries and getattr(settings, name) != info.default:
            changed.append(key)
    return [
        ConfigIssue(
            env_label,
            key,
            f"is ignored because {models_label} describes the models",
            f"move it into {models_label}, or delete {models_label} to use MODEL_*",
            Severity.WARNING,
            env.line_of(key),
        )
        for key in changed
    ]
