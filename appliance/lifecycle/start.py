"""What ``serve`` does before it deploys: verify every model's files, then record the deploy in the registry
(loading), or record the refusal (failed, with why) and raise: nothing reaches Ray when a model is refused,
so an application already running keeps serving."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.config.loader import ApplianceConfig
from appliance.config.models import ModelSpec
from appliance.lifecycle.deploys import Deployed, DeployRecorder, engine_args_digest
from appliance.lifecycle.integrity import IntegrityError, ModelToVerify, seal_downloads, verify_models
from appliance.lifecycle.manifest import ManifestStore
from appliance.registry.store import timestamp
from appliance.serve.generations import default_deployment


def verify_and_record(
    config: ApplianceConfig,
    engine_args: Mapping[str, Mapping[str, Any]],
    *,
    now: datetime | None = None,
    hub_cache: Path | None = None,
) -> DeployRecorder:
    """``engine_args``: each model's vLLM engine arguments (``appliance.serve.builder.engine_kwargs``).
    Raises IntegrityError (after recording it) when a model's files are refused. Once the application runs,
    the recorder seals what this deploy downloaded (pinned hub models seen for the first time)."""
    recorder = DeployRecorder.open(config.settings.registry_url)
    digests = {spec.id: engine_args_digest(engine_args[spec.id]) for spec in config.models}

    def deployed(spec: ModelSpec, manifest_digest: str = "", revision: str | None = None) -> Deployed:
        return Deployed(
            spec.id,
            spec.source,
            revision or spec.revision or "",
            manifest_digest,
            digests[spec.id],
            spec.model_dump(mode="json"),
            default_deployment(spec.id),
        )

    to_verify = [ModelToVerify(m.id, m.source, m.revision, m.allow_pickle_weights) for m in config.models]
    manifests = ManifestStore(Path(config.settings.registry_manifest_dir))
    try:
        verified = verify_models(to_verify, manifests, now=timestamp(now or datetime.now(UTC)), hub_cache=hub_cache)
    except IntegrityError as err:
        recorder.refused(err.failures, {spec.id: deployed(spec) for spec in config.models})
        raise
    by_id = {v.model_id: v for v in verified}
    recorder.begin([deployed(spec, by_id[spec.id].manifest_digest, by_id[spec.id].revision) for spec in config.models])
    if any(v.pending_download for v in verified):
        recorder.after_ready.append(lambda: seal_downloads(verified, manifests, now=timestamp(datetime.now(UTC))))
    return recorder
