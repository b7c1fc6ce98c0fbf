"""API keys: made here, shown once, stored in ``.secrets`` only as SHA-256 hashes.

The serving ingress checks a presented key with :func:`find_key` (constant-time comparison of digests).
:func:`update_key` changes a key's role, models or budgets in place, keeping its hash (the key stays valid).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets as _random
from collections.abc import Iterable, Mapping
from pathlib import Path

from appliance.config.envfile import remove_key, set_value
from appliance.config.secrets import (
    ALL_MODELS,
    API_KEY_PREFIX,
    KEY_NAME_RE,
    LIMIT_FIELDS,
    MAX_LIMIT,
    ApiKeyRecord,
    KeyLimits,
    Role,
)
from appliance.errors import UsageError

KEY_PREFIX = "sk-"


def new_key() -> str:
    """A fresh API key: ``sk-`` and 256 random bits, URL-safe."""
    return KEY_PREFIX + _random.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def find_key(presented: str, records: Iterable[ApiKeyRecord]) -> ApiKeyRecord | None:
    """The record whose digest matches ``presented``. Compares every record in constant time each."""
    digest = hash_key(presented)
    match = None
    for record in records:
        if hmac.compare_digest(digest, record.sha256):
            match = record
    return match


def check_name(name: str) -> str:
    if not KEY_NAME_RE.match(name):
        raise UsageError(f"key name: expected 1–48 letters, digits or '_', found {name!r}")
    return name.lower()


def parse_limit(flag: str, text: str, *, allow_none: bool = False) -> int | None:
    """A budget given on the command line: a whole number, or ``none`` (unlimited) where ``allow_none``."""
    if allow_none and text.strip().lower() == "none":
        return None
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        alternative = ", or 'none' for no limit" if allow_none else ""
        raise UsageError(f"{flag}: expected a whole number from 1 to {MAX_LIMIT}{alternative}, found {text!r}")
    return int(value)


def _check_models(role: Role, models: tuple[str, ...], served: Iterable[str]) -> None:
    if role is not Role.USER:
        return
    served_ids = set(served)
    if not models:
        raise UsageError("a user key needs --models (comma-separated model ids, or '*' for all)")
    unknown = [m for m in models if m != ALL_MODELS and m not in served_ids]
    if unknown:
        raise UsageError(
            f"--models: expected served model ids, found {', '.join(unknown)}; served: {', '.join(sorted(served_ids))}"
        )


def create_key(
    secrets_file: Path,
    name: str,
    role: Role,
    models: tuple[str, ...],
    *,
    existing: Iterable[ApiKeyRecord],
    served: Iterable[str],
    replace: bool = False,
    limits: KeyLimits = KeyLimits(),
) -> tuple[str, ApiKeyRecord]:
    """Make a key, store its hash under ``API_KEY_<NAME>``, return ``(key, record)``. The key is not kept."""
    name = check_name(name)
    _check_models(role, models, served)
    if any(record.name == name for record in existing) and not replace:
        raise UsageError(f"a key named {name!r} exists; revoke it first, or pass --force to replace it")
    key = new_key()
    record = ApiKeyRecord(name, role, models or (ALL_MODELS,), hash_key(key), limits)
    set_value(secrets_file, record.env_key, record.to_env_value())
    return key, record


def update_key(
    secrets_file: Path,
    name: str,
    *,
    existing: Iterable[ApiKeyRecord],
    served: Iterable[str],
    role: Role | None = None,
    models: tuple[str, ...] | None = None,
    limits: Mapping[str, int | None] | None = None,
) -> ApiKeyRecord | None:
    """Change a key's role, models and/or budgets, keeping its hash; rewrites its line atomically.

    ``None`` for ``role``/``models`` leaves them as they are; ``limits`` holds only the budgets to change
    (``{"tpm": None}`` removes the tpm limit). Returns the new record, or None when there is no such key.
    """
    name = check_name(name)
    current = next((record for record in existing if record.name == name), None)
    if current is None:
        return None
    new_role = role or current.role
    if models is None and new_role is Role.USER and current.role is Role.ADMIN:
        raise UsageError("an admin key made a user key needs --models (comma-separated model ids, or '*' for all)")
    new_models = current.models if models is None else models
    if models is not None or new_role is not current.role:  # a budget change leaves the models unquestioned
        _check_models(new_role, new_models, served)
    changes = dict(limits or {})
    unknown = sorted(set(changes) - set(LIMIT_FIELDS))
    if unknown:
        raise ValueError(f"unknown limit(s) {unknown}; expected {LIMIT_FIELDS}")
    limits_after = dataclasses.replace(current.limits, **changes)
    record = dataclasses.replace(current, role=new_role, models=new_models or (ALL_MODELS,), limits=limits_after)
    set_value(secrets_file, record.env_key, record.to_env_value())
    return record


def limit_warnings(record: ApiKeyRecord, max_tokens_caps: Mapping[str, int]) -> list[str]:
    """Why some requests of this key could never fit its token budgets: when a request leaves ``max_tokens``
    unset the ingress reserves the model's cap, so a tpm or daily budget below a cap refuses such requests."""
    budgets = [
        (f"tpm {record.limits.tpm}", record.limits.tpm),
        (f"tokens_per_day {record.limits.tokens_per_day}", record.limits.tokens_per_day),
    ]
    warnings = []
    for model_id, cap in sorted(max_tokens_caps.items()):
        for label, budget in budgets:
            if budget is not None and record.allows(model_id) and budget <= cap:
                warnings.append(
                    f"{label} is not above the max_tokens cap of {model_id} ({cap}): a request that "
                    "leaves max_tokens unset reserves the cap and is refused; clients must send a "
                    "smaller max_tokens"
                )
    return warnings


def revoke_key(secrets_file: Path, name: str) -> bool:
    """Remove the key named ``name``. Returns whether there was one."""
    return remove_key(secrets_file, API_KEY_PREFIX + check_name(name).upper())
