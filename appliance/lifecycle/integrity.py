"""Before a model loads: its local files are what they were the first time it was seen.

The first load of a local source writes its manifest (``REGISTRY_MANIFEST_DIR``); every later load hashes the
files again and compares: a changed, missing or unlisted file refuses the load with an error naming the file,
the expected and the found digest. Pickle weights are refused unless the model allows them. Every model is
checked, then one error lists every refusal (nothing is deployed when one fails).

A Hugging Face repo id pinned to a commit (``revision:`` 40 hex digits) is verified the same way once its
files are in the hub cache: the first deploy downloads them as the engine loads (its result says
``pending_download``), and :func:`seal_downloads` writes the manifest once the application runs; every later
load is verified before it starts. An unpinned repo id is not verified (a branch can move): its result says so,
with an empty manifest digest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ApplianceError
from appliance.lifecycle.manifest import Manifest, ManifestStore, compare, hash_directory, revision_of
from appliance.lifecycle.sources import (
    SourceFacts,
    default_hub_cache,
    hub_snapshot_dir,
    is_local,
    observe_source,
    source_problems,
)

_LOGGER = logging.getLogger(__name__)


class IntegrityError(ApplianceError):
    """A model's files are not what its manifest says, or are unsafe to load: the load was refused."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = list(failures)  # (model id, why)
        lines = "; ".join(f"model {model}: {why}" for model, why in self.failures)
        super().__init__(f"load refused, {len(self.failures)} model(s) failed the integrity check: {lines}")


@dataclass(frozen=True)
class ModelToVerify:
    model_id: str
    source: str
    revision: str | None
    allow_pickle_weights: bool


@dataclass(frozen=True)
class Verified:
    model_id: str
    source: str
    directory: Path | None  # None: not a local source
    revision: str | None  # pinned, or the hub snapshot's commit
    manifest_digest: str  # "" when not verified (a Hugging Face repo id)
    manifest_path: Path | None
    written: bool  # the manifest was written now (first sight)
    pending_download: Path | None = None  # a pinned hub model not in the cache yet: sealed once it runs


def observe_with_manifest(source: str, manifests: ManifestStore) -> SourceFacts:
    """What ``validate`` and ``doctor`` see of a source: its files and the manifest's list (nothing hashed)."""
    try:
        manifest = manifests.load(source) if is_local(source) else None
    except ValueError:
        manifest = None  # an unreadable manifest refuses the load; here only what the files are is told
    return observe_source(source, manifest_files=manifest.paths if manifest else None)


def verify_model(
    model: ModelToVerify, manifests: ManifestStore, *, now: str, hub_cache: Path | None = None
) -> Verified:
    """Verify one model's files (writing its manifest on first sight); IntegrityError says why not."""
    key = model.source
    facts = observe_source(model.source)
    if facts.directory is None:
        snapshot = hub_snapshot_dir(model.source, model.revision, hub_cache or default_hub_cache())
        if snapshot is None:
            return Verified(model.model_id, model.source, None, model.revision, "", None, False)
        if not snapshot.is_dir():
            return Verified(
                model.model_id, model.source, None, model.revision, "", None, False, pending_download=snapshot
            )
        key = f"{model.source}@{model.revision}"
        facts = observe_source(str(snapshot))
    problems = source_problems(facts, allow_pickle_weights=model.allow_pickle_weights)
    if problems:
        raise IntegrityError(
            [(model.model_id, "; ".join(f"expected {p.expected}, found {p.found} ({p.fix})" for p in problems))]
        )
    assert facts.directory is not None
    directory = facts.directory
    path = manifests.path_for(key)
    try:
        manifest = manifests.load(key)
    except ValueError as err:
        raise IntegrityError(
            [
                (
                    model.model_id,
                    f"its manifest cannot be trusted: {err}; delete it to write it "
                    "again from the files as they are now",
                )
            ]
        ) from None
    found = hash_directory(directory)
    if manifest is None:
        manifest = Manifest(key, revision_of(directory, model.revision), found, now)
        try:
            manifests.save(manifest)
        except OSError as err:
            _LOGGER.warning(
                "model %s: manifest not written to %s (%s): this load is not verified; later loads "
                "will not be either until the directory is writable",
                model.model_id,
                path,
                err.strerror,
            )
            return Verified(model.model_id, model.source, directory, manifest.revision, manifest.digest, None, False)
        _LOGGER.info("model %s: manifest written on first sight: %s (%d files)", model.model_id, path, len(found))
        return Verified(model.model_id, model.source, directory, manifest.revision, manifest.digest, path, True)
    mismatches = compare(manifest, found)
    if mismatches:
        listed = "; ".join(m.describe() for m in mismatches[:10])
        more = f"; and {len(mismatches) - 10} more" if len(mismatches) > 10 else ""
        raise IntegrityError(
            [
                (
                    model.model_id,
                    f"files differ from its manifest {path}: {listed}{more}; if the change "
                    "is intended, delete the manifest so it is written again",
                )
            ]
        )
    return Verified(model.model_id, model.source, directory, manifest.revision, manifest.digest, path, False)


def verify_models(
    models: Iterable[ModelToVerify], manifests: ManifestStore, *, now: str, hub_cache: Path | None = None
) -> list[Verified]:
    """Verify every model, then raise one IntegrityError listing every failure (none: the results)."""
    results, failures = [], []
    for model in models:
        try:
            results.append(verify_model(model, manifests, now=now, hub_cache=hub_cache))
        except IntegrityError as err:
            failures += err.failures
    if failures:
        raise IntegrityError(failures)
    return results


def seal_downloads(verified: Iterable[Verified], manifests: ManifestStore, *, now: str) -> dict[str, str]:
    """Once the application runs: the manifest of each pinned hub model downloaded by this deploy (first
    sight). Returns model id → manifest digest for those written; one that cannot be written is logged."""
    sealed = {}
    for item in verified:
        snapshot = item.pending_download
        if snapshot is None or not snapshot.is_dir():
            continue
        key = f"{item.source}@{item.revision}"
        if manifests.path_for(key).exists():
            continue
        manifest = Manifest(key, item.revision, hash_directory(snapshot), now)
        try:
            manifests.save(manifest)
        except OSError as err:
            _LOGGER.warning("model %s: manifest of the downloaded files not written (%s)", item.model_id, err.strerror)
            continue
        _LOGGER.info(
            "model %s: manifest of the downloaded files written (%d files)", item.model_id, len(manifest.files)
        )
        sealed[item.model_id] = manifest.digest
    return sealed
