"""The secrets of ``.secrets``: passwords, the Datadog key, and API keys stored only as SHA-256 hashes.

An API key is one line per key::

    API_KEY_ALICE=sha256:<64 hex digits>;role=user;models=qwen2.5-0.5b-instruct,llama-8b;rpm=60;tpm=100000

``role`` is ``admin`` (every model and the admin endpoints) or ``user`` (its listed models only;
``models=*`` means every model). ``rpm``, ``tpm`` and ``tokens_per_day`` are the key's optional budgets
(requests per minute, prompt + completion tokens per minute, tokens per UTC day; absent = unlimited), enforced
by the ingress (:mod:`appliance.serve.budget`). The key itself is shown once by
``python -m appliance keys create`` and never stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

from appliance.config.fields import expected, setting

API_KEY_PREFIX = "API_KEY_"
KEY_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,48}\Z")
_HASH_RE = re.compile(r"[0-9a-f]{64}\Z")
ALL_MODELS = "*"

PASSWORDS = "Passwords"
SERVICES = "Service credentials"


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


MAX_LIMIT = 10**12  # larger than any real budget; keeps the arithmetic and the headers sane
LIMIT_FIELDS = ("rpm", "tpm", "tokens_per_day")  # their names in a key's line, in KeyLimits and the CLI's JSON


@dataclass(frozen=True)
class KeyLimits:
    """One key's budgets; ``None`` = unlimited. Here (not in ``serve``) so config and serve both import it."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # prompt + completion tokens per minute
    tokens_per_day: int | None = None  # prompt + completion tokens per UTC day

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None and self.tokens_per_day is None

    def fields(self) -> str:
        """The ``;rpm=…;tpm=…;tokens_per_day=…`` tail of a key's line (set limits only)."""
        return "".join(f";{name}={value}" for name, value in self.as_dict().items() if value is not None)

    def as_dict(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in LIMIT_FIELDS}


@dataclass(frozen=True)
class ApiKeyRecord:
    """One stored API key: its name, role, allowed models (``("*",)`` = all), SHA-256 hex digest and budgets."""

    name: str
    role: Role
    models: tuple[str, ...]
    sha256: str
    limits: KeyLimits = KeyLimits()

    @property
    def env_key(self) -> str:
        return API_KEY_PREFIX + self.name.upper()

    def allows(self, model_id: str) -> bool:
        return self.role is Role.ADMIN or ALL_MODELS in self.models or model_id in self.models

    def to_env_value(self) -> str:
        return f"sha256:{self.sha256};role={self.role.value};models={','.join(self.models)}{self.limits.fields()}"


class ApiKeyFormatError(ValueError):
    """A stored API key line is malformed; ``expected`` says what shape was wanted."""

    def __init__(self, expected_text: str) -> None:
        super().__init__(expected_text)
        self.expected = expected_text


def parse_api_key(env_key: str, value: str) -> ApiKeyRecord:
    """Parse one ``API_KEY_<NAME>`` line. Raises :class:`ApiKeyFormatError` (never echoing the value)."""
    name = env_key[len(API_KEY_PREFIX) :]
    if not KEY_NAME_RE.match(name):
        raise ApiKeyFormatError("a key name of 1–48 letters, digits or '_' after API_KEY_")
    fields: dict[str, str] = {}
    for part in (p.strip() for p in value.split(";")):
        label, sep, content = part.partition(":" if part.startswith("sha256:") else "=")
        if not sep:
            raise ApiKeyFormatError(
                "sha256:<64 hex digits>;role=admin|user;models=<ids or *>[;rpm=N;tpm=N;tokens_per_day=N]"
            )
        fields[label.strip()] = content.strip()
    digest = fields.get("sha256", "")
    if not _HASH_RE.match(digest):
        raise ApiKeyFormatError("a 'sha256:' field of 64 lower-case hex digits")
    try:
        role = Role(fields.get("role", ""))
    except ValueError:
        raise ApiKeyFormatError("role=admin or role=user") from None
    models = tuple(m.strip() for m in fields.get("models", "").split(",") if m.strip())
    if role is Role.USER and not models:
        raise ApiKeyFormatError("models=<comma-separated model ids, or *> for a user key")
    unknown = set(fields) - {"sha256", "role", "models", *LIMIT_FIELDS}
    if unknown:
        raise ApiKeyFormatError("only the fields sha256, role, models, rpm, tpm and tokens_per_day")
    limits = KeyLimits(**{name: _limit(name, fields[name]) for name in LIMIT_FIELDS if name in fields})
    return ApiKeyRecord(name.lower(), role, models or (ALL_MODELS,), digest, limits)


def _limit(name: str, text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,13}", text) or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiKeyFormatError(f"{name}=<a whole number from 1 to {MAX_LIMIT}>, or no {name} field for no limit")
    return int(text)


def parse_api_keys(values: Iterable[tuple[str, str]]) -> tuple[list[ApiKeyRecord], list[tuple[str, ApiKeyFormatError]]]:
    """The API keys among ``(key, value)`` pairs of a secrets file, and the malformed ones with why."""
    records: list[ApiKeyRecord] = []
    failures: list[tuple[str, ApiKeyFormatError]] = []
    for key, value in values:
        if key.startswith(API_KEY_PREFIX):
            try:
                records.append(parse_api_key(key, value))
            except ApiKeyFormatError as err:
                failures.append((key, err))
    return records, failures


class Secrets(BaseModel):
    """Everything in ``.secrets`` except the API keys, which are parsed into :class:`ApiKeyRecord`."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=str.upper, validate_by_alias=True, validate_by_name=True
    )

    grafana_admin_password: str = setting(
        "", "Grafana 'admin' password; empty = generated by 'make up' on first run.", PASSWORDS
    )
    dashboard_user: str = setting("admin", "User name for basic auth on /prometheus/ and the Ray dashboard.", PASSWORDS)
    dashboard_password: str = setting(
        "",
        "Password for basic auth on /prometheus/ and the Ray dashboard; empty = generated by 'make up'.",
        PASSWORDS,
    )
    datadog_api_key: str = setting("", "Datadog API key; the Datadog agent runs only when it is set.", SERVICES)
    hf_token: str = setting("", "Hugging Face token for gated models; empty = anonymous downloads.", SERVICES)

    api_keys: tuple[ApiKeyRecord, ...] = ()

    @field_validator("grafana_admin_password", "dashboard_password")
    @classmethod
    def _password(cls, value: str) -> str:
        if value and len(value) < 12:
            raise expected("a password of at least 12 characters (or empty to have one generated)")
        return value

    @field_validator("dashboard_user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
            raise expected("a user name of letters, digits, '.', '_' or '-'")
        return value

    @field_validator("datadog_api_key")
    @classmethod
    def _datadog(cls, value: str) -> str:
        if value and not re.fullmatch(r"[0-9a-f]{32}", value):
            raise expected("32 lower-case hex digits (Datadog API key) or empty")
        return value

    def secret_values(self) -> list[str]:
        """Every secret string, for redaction of output."""
        values = [self.grafana_admin_password, self.dashboard_password, self.datadog_api_key, self.hf_token]
        values += [record.sha256 for record in self.api_keys]
        return [v for v in values if v]


def secret_names() -> list[str]:
    """Every fixed ``.secrets`` key, in declaration order (API keys are ``API_KEY_<NAME>``)."""
    return [name.upper() for name in Secrets.model_fields if name != "api_keys"]
