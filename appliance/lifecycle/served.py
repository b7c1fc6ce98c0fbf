"""What production serves after the model changes applied since serve started (``models deploy|promote|rollback``,
the admin API), kept in ``served.json`` beside the registry's manifests, so that a serve restarted under the same
configuration (the supervisor's restart, a crash, the host's reboot) serves it again: a model added live, the
generation a change or a rollback switched to — the last good generation of each model, not the ``models.yaml``
that ``make up`` rendered before those changes.

The record names the configuration it was made under (a digest of the models as configured). A serve started
from another configuration (``make up`` after an edit of models.yaml or of the MODEL_* settings) does not use it,
and removes it: the operator's file wins, and an old record never comes back to life.

Pure decisions (:func:`restore`) apart from the file's reading and writing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance.config.models import ModelSpec
from appliance.config.settings import Settings

_LOGGER = logging.getLogger(__name__)
RECORD_NAME = "served.json"
VERSION = 1


def record_path(settings: Settings) -> Path:
    """``served.json`` in the registry's directory (the parent of REGISTRY_MANIFEST_DIR: data/registry)."""
    return Path(settings.registry_manifest_dir).parent / RECORD_NAME


def configured_digest(models: Iterable[ModelSpec]) -> str:
    """Pure: the same models as configured give the same digest, however the file that names them is laid out."""
    data = [spec.model_dump(mode="json") for spec in models]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ServedRecord:
    base: str  # configured_digest() of the configuration serve started from
    models: tuple[dict[str, Any], ...]  # every model production serves, as its ModelSpec's JSON

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "base": self.base, "models": list(self.models)}


@dataclass(frozen=True)
class Restored:
    models: tuple[ModelSpec, ...]
    used: bool  # the record was used (else the configured models, as they are)
    why: str  # for the log: what was restored, or why the record was not used
    stale: bool = False  # a record of another configuration: to remove


def record_of(base: str, models: Iterable[ModelSpec]) -> ServedRecord:
    return ServedRecord(base, tuple(spec.model_dump(mode="json") for spec in models))


def restore(configured: Sequence[ModelSpec], record: ServedRecord | None) -> Restored:
    """Pure: the models serve starts. The record's, when it was made under exactly this configuration and every
    model in it is a valid spec; else the configured ones."""
    if record is None:
        return Restored(tuple(configured), False, "no model change recorded since the configuration was applied")
    if record.base != configured_digest(configured):
        return Restored(tuple(configured), False, "the configuration changed since the record was made", stale=True)
    try:
        models = tuple(ModelSpec.model_validate(data) for data in record.models)
    except ValidationError as err:
        return Restored(tuple(configured), False, f"the record holds an invalid model: {err.error_count()} error(s)")
    ids = [spec.id for spec in models]
    if not models or len(set(ids)) != len(ids):
        return Restored(tuple(configured), False, "the record holds no models, or one model twice")
    if models == tuple(configured):
        return Restored(models, False, "the recorded models are the configured ones")
    before = {spec.id: spec for spec in configured}
    changes = [
        f"{spec.id} ({'added' if spec.id not in before else 'as last changed'})"
        for spec in models
        if before.get(spec.id) != spec
    ]
    gone = [mid for mid in before if mid not in ids]
    why = "the model changes applied since the configuration: " + ", ".join(changes or ["none"])
    if gone:
        why += f"; no longer served: {', '.join(gone)}"
    return Restored(models, True, why)


def read_record(path: Path) -> ServedRecord | None:
    """The record, or None when there is none or it cannot be read (said in the log: serve then starts from the
    configuration, as before any change)."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"expected version {VERSION}")
        base, models = data["base"], data["models"]
        if not isinstance(base, str) or not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
            raise ValueError("expected a base digest and a list of models")
        return ServedRecord(base, tuple(models))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as err:  # json.JSONDecodeError is a ValueError
        _LOGGER.warning("%s not used (%s): serving the configured models", path, type(err).__name__)
        return None


def write_record(path: Path, record: ServedRecord) -> None:
    """Atomically (a restart never reads half a record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".served-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(record.to_json(), out, indent=1, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
