"""API keys: made here, shown once, stored in ``.secrets`` only as SHA-256 hashes.

The serving ingress checks a presented key with :func:`find_key` (constant-time comparison of digests).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random
from collections.abc import Iterable
from pathlib import Path

from appliance.config.envfile import remove_key, set_value
from appliance.config.secrets import (
    ALL_MODELS,
    API_KEY_PREFIX,
    KEY_NAME_RE,
    ApiKeyRecord,
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


def create_key(
    secrets_file: Path,
    name: str,
    role: Role,
    models: tuple[str, ...],
    *,
    existing: Iterable[ApiKeyRecord],
    served: Iterable[str],
    replace: bool = False,
) -> tuple[str, ApiKeyRecord]:
    """Make a key, store its hash under ``API_KEY_<NAME>``, return ``(key, record)``. The key is not kept."""
    name = check_name(name)
    served_ids = set(served)
    if role is Role.USER:
        if not models:
            raise UsageError("a user key needs --models (comma-separated model ids, or '*' for all)")
        unknown = [m for m in models if m != ALL_MODELS and m not in served_ids]
        if unknown:
            raise UsageError(
                f"--models: expected served model ids, found {', '.join(unknown)}; "
                f"served: {', '.join(sorted(served_ids))}"
            )
    if any(record.name == name for record in existing) and not replace:
        raise UsageError(f"a key named {name!r} exists; revoke it first, or pass --force to replace it")
    key = new_key()
    record = ApiKeyRecord(name, role, models or (ALL_MODELS,), hash_key(key))
    set_value(secrets_file, record.env_key, record.to_env_value())
    return key, record


def revoke_key(secrets_file: Path, name: str) -> bool:
    """Remove the key named ``name``. Returns whether there was one."""
    return remove_key(secrets_file, API_KEY_PREFIX + check_name(name).upper())
