"""Recording a serve start in the registry: each model's revision goes pending → loading → ready, or to failed
with the reason (integrity refused, the application failed to deploy).

Best effort, on purpose: a registry that cannot be opened or written is logged and serving goes on; what must
hold before a load (the integrity check) is not done here and is never skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from appliance.errors import ApplianceError
from appliance.registry.states import Environment, Status
from appliance.registry.store import Entry, RegistryStore, RevisionKey

_LOGGER = logging.getLogger(__name__)
MAX_REASON = 500


def engine_args_digest(engine_kwargs: Mapping[str, Any]) -> str:
    """Digest of a model's vLLM engine arguments (what promotion compares: same args, same digest)."""
    canonical = json.dumps(engine_kwargs, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Deployed:
    """One model of a deploy, as the registry keys it."""

    model_id: str
    source: str
    revision: str
    manifest_digest: str
    engine_digest: str
    spec: Mapping[str, Any] | None = None  # its models.yaml entry: kept so a rollback can start it again
    deployment: str = ""  # the Ray Serve deployment that serves it: recorded as the model's route


def _short(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


class DeployRecorder:
    """Writes one deploy's transitions; every write is logged and survived when the registry fails."""

    def __init__(
        self,
        store: RegistryStore | None,
        *,
        environment: Environment = Environment.PRODUCTION,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.environment = environment
        self.clock = clock
        self.entries: dict[str, Entry] = {}
        # run once the application is running; each returns model id → manifest digest learnt only now
        self.after_ready: list[Callable[[], Mapping[str, str]]] = []

    @classmethod
    def open(cls, url: str, **kwargs: Any) -> DeployRecorder:
        """The recorder for REGISTRY_URL, its schema brought up to date; without a store when that fails."""
        try:
            store = RegistryStore.open(url)
            store.migrate()
        except ApplianceError as err:
            _LOGGER.warning("model registry unavailable, this deploy is not recorded: %s", err)
            return cls(None, **kwargs)
        return cls(store, **kwargs)

    def _key(self, model: Deployed) -> RevisionKey:
        return RevisionKey(
            model.model_id, self.environment, model.source, model.revision, model.manifest_digest, model.engine_digest
        )

    def _safely(self, what: str, action: Callable[[RegistryStore], None]) -> None:
        if self.store is None:
            return
        try:
            action(self.store)
        except ApplianceError as err:  # RegistryError, TransitionRefused: recorded nothing, serving goes on
            _LOGGER.warning("model registry: could not record %s: %s", what, err)

    def begin(self, models: Iterable[Deployed], *, reason: str = "serve started") -> None:
        """Each model's entry (new: pending), then loading. A disabled one stays disabled."""
        for model in models:

            def start(store: RegistryStore, model: Deployed = model) -> None:
                now = self.clock()
                entry = store.record(self._key(model), reason=reason, now=now)
                if entry.status is Status.SMOKE_TESTING:  # a restart interrupted it: start over
                    store.transition(entry.id, Status.FAILED, reason="interrupted by a restart", now=now)
                    entry = store.record(self._key(model), reason=reason, now=now)
                if entry.status in (Status.PENDING, Status.READY):
                    entry = store.transition(entry.id, Status.LOADING, reason=reason, now=now)
                if model.spec is not None:
                    store.save_spec(entry.id, dict(model.spec))
                if model.deployment:
                    store.set_route(entry.id, model.deployment, now=now)
                self.entries[model.model_id] = entry

            self._safely(f"the deploy of {model.model_id}", start)

    def refused(self, failures: Iterable[tuple[str, str]], models: Mapping[str, Deployed]) -> None:
        """Models whose load was refused before anything started: recorded failed, with why."""
        for model_id, why in failures:
            model = models[model_id]

            def refuse(store: RegistryStore, model: Deployed = model, why: str = why) -> None:
                now = self.clock()
                entry = store.record(self._key(model), reason="serve started", now=now)
                if entry.status in (Status.PENDING, Status.LOADING, Status.SMOKE_TESTING, Status.READY):
                    store.transition(entry.id, Status.FAILED, reason=_short(f"load refused: {why}"), now=now)

            self._safely(f"the refusal of {model_id}", refuse)

    def finish(self, ok: bool, reason: str) -> None:
        """Every model this deploy set loading: ready (``ok``) or failed, with ``reason``."""
        target = Status.READY if ok else Status.FAILED
        for model_id, entry in self.entries.items():
            if entry.status is not Status.LOADING:
                continue

            def done(store: RegistryStore, entry: Entry = entry) -> None:
                self.entries[entry.model_id] = store.transition(
                    entry.id, target, reason=_short(reason), now=self.clock()
                )

            self._safely(f"{target.value} for {model_id}", done)
        if ok:
            self._run_after_ready()

    def health_checked(self) -> None:
        """The application answered healthy: the time goes into each ready model's last health check."""
        for model_id, entry in self.entries.items():
            if entry.status is not Status.READY:
                continue

            def check(store: RegistryStore, entry: Entry = entry) -> None:
                store.record_health_check(entry.id, now=self.clock())

            self._safely(f"the health check of {model_id}", check)

    def _run_after_ready(self) -> None:
        for hook in self.after_ready:
            try:
                digests = hook()
            except (OSError, ApplianceError) as err:
                _LOGGER.warning("after the deploy: %s", err)
                continue
            for model_id, digest in digests.items():
                entry = self.entries.get(model_id)
                if entry is None:
                    continue

                def fill(store: RegistryStore, entry: Entry = entry, digest: str = digest) -> None:
                    self.entries[entry.model_id] = store.fill_manifest_digest(entry.id, digest) or entry

                self._safely(f"the manifest digest of {model_id}", fill)
