"""Applying a plan (:mod:`appliance.lifecycle.plan`): each changed model, one at a time, goes
record (pending) → [replace: stop the old generation] → loading (start the new generation, wait until ready)
→ smoke-testing (a real completion, timed) → [a new model in production: the ingress learns it] → switch (one
registry transaction: new ready, old rolled-back, the route moved; the ingress follows within a second) → drain
and stop the old generation. A model removed: the ingress drops it → its engine stops → its entry rolled back
and its route removed (one transaction).

Any failure on the way stops the new generation, records it ``failed`` with why, and leaves (or, after a
replace, starts again) the last good generation: the route never moved, so requests kept going to it. Models a
step does not name are never touched. The only thing here that talks to Ray Serve is the :class:`ServePort`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from appliance.errors import ApplianceError
from appliance.lifecycle.plan import Action, Mode, Plan, Step
from appliance.registry.states import Environment, Status
from appliance.registry.store import Entry, RegistryStore

_LOGGER = logging.getLogger(__name__)
MAX_REASON = 500
# After the switch, before the old generation is told to stop: the ingress reads the routes at most every second,
# so a request routed just before the switch reaches the old generation while it still takes new ones.
SETTLE_S = 2.0


class GenerationError(ApplianceError):
    """A generation did not come up, did not pass its smoke test, or could not be stopped (the message is
    recorded in the registry and shown to the operator: no client input, no secret)."""


class ServePort(Protocol):
    """What the executor asks of Ray Serve (the serve head implements it; unit tests use a fake)."""

    def deployment_name(self, model_id: str, entry_id: int) -> str: ...

    def start(self, model_id: str, deployment: str, spec: Mapping[str, Any]) -> None: ...

    def wait_ready(self, deployment: str, timeout_s: float) -> None: ...  # GenerationError when it failed

    def smoke(self, model_id: str, deployment: str) -> None: ...  # one real completion; GenerationError

    def stop(self, deployment: str) -> None: ...  # drains in-flight requests, then removes it

    def add(self, model_id: str, deployment: str) -> None: ...  # a new model id: the ingress learns it (production)

    def remove(self, model_id: str, deployment: str) -> None: ...  # the ingress drops it, then its engine stops


class Events(Protocol):
    """Where each transition goes besides the registry (metrics, events)."""

    def transition(self, model_id: str, environment: Environment, status: Status) -> None: ...

    def rolled_back(self, model_id: str, environment: Environment, reason: str) -> None: ...


class NoEvents:
    def transition(self, model_id: str, environment: Environment, status: Status) -> None:
        pass

    def rolled_back(self, model_id: str, environment: Environment, reason: str) -> None:
        pass


@dataclass
class Outcome:
    model_id: str
    action: str
    ok: bool
    reason: str
    mode: str = "-"
    entry_id: int | None = None
    rolled_back: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # ready, smoke, switch, rollback

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "action": self.action,
            "ok": self.ok,
            "reason": self.reason,
            "mode": self.mode,
            "entry": self.entry_id,
            "rolled_back": self.rolled_back,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def _short(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


class Executor:
    def __init__(
        self,
        store: RegistryStore,
        port: ServePort,
        *,
        events: Any = None,
        ready_timeout_s: float = 600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        settle_s: float = SETTLE_S,
    ) -> None:
        self.store = store
        self.port = port
        self.events: Events = events or NoEvents()
        self.ready_timeout_s = ready_timeout_s
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.settle_s = settle_s

    def apply(self, plan: Plan) -> list[Outcome]:
        """Every step, in order; a failed one is rolled back and the next still runs (each model on its own)."""
        outcomes = []
        for step in plan.steps:
            if step.action is Action.KEEP:
                outcomes.append(
                    Outcome(
                        step.model_id,
                        step.action.value,
                        True,
                        step.reason,
                        entry_id=step.serving.entry.id if step.serving else None,
                    )
                )
            elif step.action is Action.REFUSE:
                outcomes.append(self._refuse(plan, step))
            elif step.action is Action.REMOVE:
                outcomes.append(self._remove(plan, step))
            else:
                outcomes.append(self._change(plan, step))
        return outcomes

    # --- steps ------------------------------------------------------------------------------------------
    def _transition(self, entry: Entry, status: Status, reason: str) -> Entry:
        entry = self.store.transition(entry.id, status, reason=_short(reason), now=self.clock())
        self.events.transition(entry.model_id, entry.environment, status)
        return entry

    def _record(self, plan: Plan, step: Step) -> Entry:
        assert step.wanted is not None
        reason = f"{plan.kind} requested"
        entry = self.store.record(step.wanted.key(plan.environment), reason=reason, now=self.clock())
        if entry.status in (Status.LOADING, Status.SMOKE_TESTING):  # a change interrupted before: start over
            entry = self._transition(entry, Status.FAILED, "interrupted (the serve process restarted mid-change)")
            entry = self.store.record(step.wanted.key(plan.environment), reason=reason, now=self.clock())
        elif entry.status in (Status.READY, Status.DISABLED):  # left ready by an earlier start, not serving now
            entry = self._transition(entry, Status.ROLLED_BACK, "superseded earlier (it was not serving)")
            entry = self.store.record(step.wanted.key(plan.environment), reason=reason, now=self.clock())
        if entry.status is not Status.PENDING:
            raise GenerationError(f"entry {entry.id} is {entry.status.value}, expected it pending for a new generation")
        self.events.transition(entry.model_id, entry.environment, Status.PENDING)
        self.store.save_spec(entry.id, dict(step.wanted.spec))
        return entry

    def _refuse(self, plan: Plan, step: Step) -> Outcome:
        if step.wanted is not None and step.wanted.refused:  # a load the integrity check refused: kept as failed
            entry = self._record(plan, step)
            self._transition(entry, Status.FAILED, step.reason)
            self.events.rolled_back(step.model_id, plan.environment, step.reason)
            return Outcome(step.model_id, step.action.value, False, step.reason, entry_id=entry.id, rolled_back=True)
        return Outcome(step.model_id, step.action.value, False, step.reason)

    def _remove(self, plan: Plan, step: Step) -> Outcome:
        """The ingress drops the model (its requests get 404 from then on), its engine stops, and the registry
        records the entry rolled back with why and removes the route. A failure leaves it served, said."""
        assert step.serving is not None
        old = step.serving
        outcome = Outcome(step.model_id, step.action.value, False, "", entry_id=old.entry.id)
        started = self.monotonic()
        try:
            self.port.remove(step.model_id, old.deployment)
        except ApplianceError as err:
            outcome.reason = _short(f"not removed: {err}")
            return outcome
        outcome.seconds["remove"] = self.monotonic() - started
        reason = f"{plan.kind}: removed (no longer in models.yaml)"
        try:
            entry = self.store.retire(old.entry.id, reason=reason, now=self.clock())
        except ApplianceError as err:
            outcome.reason = _short(f"removed from serving, but not recorded: {err}")
            return outcome
        self.events.transition(entry.model_id, entry.environment, entry.status)
        outcome.ok, outcome.reason = True, reason
        return outcome

    def _change(self, plan: Plan, step: Step) -> Outcome:
        old = step.serving
        outcome = Outcome(step.model_id, step.action.value, False, "", step.mode.value)
        try:
            entry = self._record(plan, step)
        except ApplianceError as err:
            outcome.reason = f"not started: {err}"
            return outcome
        outcome.entry_id = entry.id
        deployment = self.port.deployment_name(step.model_id, entry.id)
        stopped_old = False
        phase = "start"
        try:
            if step.mode is Mode.REPLACE and old is not None:
                phase = "stop the old generation"
                self.port.stop(old.deployment)
                stopped_old = True
            entry = self._transition(entry, Status.LOADING, f"{plan.kind}: starting {deployment} ({step.mode.value})")
            phase = "load"
            started = self.monotonic()
            assert step.wanted is not None
            self.port.start(step.model_id, deployment, step.wanted.spec)
            self.port.wait_ready(deployment, self.ready_timeout_s)
            outcome.seconds["ready"] = self.monotonic() - started
            entry = self._transition(
                entry, Status.SMOKE_TESTING, f"{plan.kind}: ready in {outcome.seconds['ready']:.1f} s"
            )
            phase = "smoke test"
            started = self.monotonic()
            self.port.smoke(step.model_id, deployment)
            outcome.seconds["smoke"] = self.monotonic() - started
            if old is None and plan.environment is Environment.PRODUCTION:
                phase = "add it to the running application"  # the ingress learns a model it did not serve
                self.port.add(step.model_id, deployment)
            phase = "switch"
            started = self.monotonic()
            reason = f"{plan.kind}: smoke test passed in {outcome.seconds['smoke']:.2f} s"
            entry = self.store.switch(
                entry.id, old.entry.id if old else None, deployment, reason=_short(reason), now=self.clock()
            )
            outcome.seconds["switch"] = self.monotonic() - started
            self.events.transition(entry.model_id, entry.environment, Status.READY)
            if old is not None:
                self.events.transition(old.entry.model_id, old.entry.environment, Status.ROLLED_BACK)
        except ApplianceError as err:  # GenerationError, RegistryError, TransitionRefused
            self._undo(plan, step, entry, deployment, stopped_old, f"{phase} failed: {err}", outcome)
            return outcome
        except Exception as err:  # the per-model boundary: anything else still rolls back, logged with context
            _LOGGER.exception("model %s: %s failed unexpectedly", step.model_id, phase)
            self._undo(
                plan,
                step,
                entry,
                deployment,
                stopped_old,
                f"{phase} failed: internal error {type(err).__name__}",
                outcome,
            )
            return outcome
        if old is not None and not stopped_old:
            self.sleep(self.settle_s)
            try:
                self.port.stop(old.deployment)  # drained by Serve before it goes: the route moved already
            except ApplianceError as err:
                _LOGGER.warning(
                    "model %s: the old generation %s was not stopped: %s", step.model_id, old.deployment, err
                )
        outcome.ok = True
        outcome.reason = reason
        return outcome

    def _undo(
        self, plan: Plan, step: Step, entry: Entry, deployment: str, stopped_old: bool, why: str, outcome: Outcome
    ) -> None:
        """The change failed: stop the new generation, record why, and have the last good one serve."""
        started = self.monotonic()
        _LOGGER.warning("model %s: %s; rolling back", step.model_id, why)
        try:
            self.port.stop(deployment)
        except ApplianceError as err:
            _LOGGER.warning("model %s: the failed generation %s was not stopped: %s", step.model_id, deployment, err)
        current = self.store.entry(entry.id) or entry
        if current.status in (Status.PENDING, Status.LOADING, Status.SMOKE_TESTING):
            self._transition(current, Status.FAILED, why)
        old = step.serving
        restored = "the old generation kept serving"
        if stopped_old and old is not None:
            restored = self._restart_old(step, old.entry, old.deployment)
        elif old is None:
            restored = "no earlier generation to keep"
        outcome.rolled_back = True
        outcome.seconds["rollback"] = self.monotonic() - started
        outcome.reason = _short(f"{why}; rolled back: {restored}")
        self.events.rolled_back(step.model_id, plan.environment, outcome.reason)

    def _restart_old(self, step: Step, old: Entry, deployment: str) -> str:
        spec = self.store.spec(old.id)
        if spec is None:
            self._transition(
                old, Status.FAILED, "stopped for a replace that failed; no recorded spec to start it again"
            )
            return f"entry {old.id} could not be started again (no recorded spec): run make up"
        try:
            self.port.start(step.model_id, deployment, spec)
            self.port.wait_ready(deployment, self.ready_timeout_s)
        except ApplianceError as err:
            self._transition(
                old, Status.FAILED, _short(f"stopped for a replace that failed, then did not start again: {err}")
            )
            return f"entry {old.id} did not start again ({err}): run make up"
        return f"entry {old.id} started again and serves"
