"""Planning a model change, purely: from what serves now (the registry's routes and entries), what is wanted
(models.yaml after validation and the integrity check, a promotion, a rollback target) and the free resources,
the steps to take. No store, no Ray, no clock: :mod:`appliance.lifecycle.apply` acts on the plan.

Each step concerns one model. ``keep``: nothing differs, the model is not touched (a change to another model
never restarts it). ``start``: a model with no generation yet. ``change``: a new generation replaces the one
serving, ``beside`` it when the free resources hold both (no request sees a gap) or ``replace`` (the old one is
stopped first; its requests get 503 + Retry-After until the new one is ready), said up front. ``remove``: a model
production serves that the deployed models.yaml no longer names (the ingress drops it, then its engine stops).
``refuse``: the change cannot be made (integrity refused it, no resources, nothing to roll back to); nothing is
touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from appliance.registry.states import LIVE, Environment, Status
from appliance.registry.store import Entry, Event, RevisionKey


class Action(StrEnum):
    KEEP = "keep"
    START = "start"
    CHANGE = "change"
    REMOVE = "remove"
    REFUSE = "refuse"


class Mode(StrEnum):
    BESIDE = "beside"  # the new generation starts next to the old; routing switches once it passed its smoke test
    REPLACE = "replace"  # not enough room for both: the old generation stops first (503 + Retry-After meanwhile)
    NONE = "-"


@dataclass(frozen=True)
class Need:
    """What one generation of a model takes (Ray's logical CPUs and GPUs, over all its replicas)."""

    cpus: float
    gpus: float

    def fits(self, free: Need) -> bool:
        return self.cpus <= free.cpus and self.gpus <= free.gpus

    def minus(self, other: Need) -> Need:
        return Need(self.cpus - other.cpus, self.gpus - other.gpus)


@dataclass(frozen=True)
class Wanted:
    """One model as the change wants it: its registry key, what it is started from, and what it needs."""

    model_id: str
    source: str
    revision: str
    manifest_digest: str
    engine_digest: str
    spec: Mapping[str, Any]  # the models.yaml entry (ModelSpec as JSON)
    need: Need
    refused: str = ""  # why the integrity check refused its files ("" = verified)
    entry_id: int | None = None  # a rollback or promotion names the entry it restores

    def key(self, environment: Environment) -> RevisionKey:
        return RevisionKey(
            self.model_id, environment, self.source, self.revision, self.manifest_digest, self.engine_digest
        )

    def same_as(self, entry: Entry) -> bool:
        return (self.source, self.revision, self.manifest_digest, self.engine_digest) == (
            entry.source,
            entry.revision,
            entry.manifest_digest,
            entry.engine_digest,
        )


@dataclass(frozen=True)
class Serving:
    """The generation that answers a model now: its entry and its Ray Serve deployment."""

    entry: Entry
    deployment: str


@dataclass(frozen=True)
class Step:
    model_id: str
    action: Action
    mode: Mode
    reason: str
    wanted: Wanted | None = None
    serving: Serving | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "action": self.action.value,
            "mode": self.mode.value,
            "reason": self.reason,
            "from_entry": self.serving.entry.id if self.serving else None,
            "to_entry": self.wanted.entry_id if self.wanted else None,
        }


@dataclass(frozen=True)
class Plan:
    kind: str  # deploy | promote | rollback
    environment: Environment
    steps: tuple[Step, ...] = field(default=())

    @property
    def changes(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.action in (Action.START, Action.CHANGE))

    @property
    def refused(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.action is Action.REFUSE)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "environment": self.environment.value, "steps": [s.to_json() for s in self.steps]}


def plan_deploy(environment: Environment, wanted: Sequence[Wanted], serving: Mapping[str, Serving], free: Need) -> Plan:
    """``deploy``: bring every wanted model to its wanted revision. A model production serves that is no longer
    wanted is removed from the running application (the other models are not touched)."""
    steps: list[Step] = []
    room = free
    for model in wanted:
        current = serving.get(model.model_id)
        if model.refused:
            steps.append(
                Step(
                    model.model_id,
                    Action.REFUSE,
                    Mode.NONE,
                    f"integrity check refused the load: {model.refused}",
                    model,
                    current,
                )
            )
            continue
        if current is not None and model.same_as(current.entry) and current.entry.status in LIVE:
            steps.append(Step(model.model_id, Action.KEEP, Mode.NONE, "unchanged", model, current))
            continue
        step = _start_or_change(model, current, room)
        if step.action is Action.START:
            room = room.minus(model.need)  # a new model keeps what it takes; a changed one gives the old back
        steps.append(step)
    wanted_ids = {m.model_id for m in wanted}
    for model_id, current in sorted(serving.items()):
        if model_id in wanted_ids:
            continue
        if environment is Environment.PRODUCTION:
            steps.append(Step(model_id, Action.REMOVE, Mode.NONE, "no longer in models.yaml: removed", None, current))
        else:  # staging holds no running generation to remove (a staged one is stopped once recorded)
            steps.append(
                Step(model_id, Action.KEEP, Mode.NONE, "not in this models.yaml: left as it is", None, current)
            )
    return Plan("deploy", environment, tuple(steps))


def _start_or_change(model: Wanted, current: Serving | None, room: Need) -> Step:
    if current is None:
        if not model.need.fits(room):
            return Step(
                model.model_id,
                Action.REFUSE,
                Mode.NONE,
                f"not enough free resources to start it (needs {_need(model.need)}, free {_need(room)})",
                model,
            )
        return Step(model.model_id, Action.START, Mode.BESIDE, "a new model", model)
    what = _difference(model, current.entry)
    if model.need.fits(room):
        return Step(
            model.model_id,
            Action.CHANGE,
            Mode.BESIDE,
            f"{what}; the new generation starts beside the old one",
            model,
            current,
        )
    return Step(
        model.model_id,
        Action.CHANGE,
        Mode.REPLACE,
        f"{what}; not enough free resources for both "
        f"generations (needs {_need(model.need)}, free {_need(room)}): the old one stops first and requests "
        f"get 503 + Retry-After until the new one is ready",
        model,
        current,
    )


def _difference(model: Wanted, entry: Entry) -> str:
    changed = [
        name
        for name, a, b in (
            ("source", model.source, entry.source),
            ("revision", model.revision, entry.revision),
            ("weights", model.manifest_digest, entry.manifest_digest),
            ("engine arguments", model.engine_digest, entry.engine_digest),
        )
        if a != b
    ]
    if not changed:
        return f"the serving generation is {entry.status.value}"
    return "changed: " + ", ".join(changed)


def _need(need: Need) -> str:
    return f"{need.cpus:g} CPU" + (f", {need.gpus:g} GPU" if need.gpus else "")


def plan_promote(
    model_id: str,
    staging: Entry | None,
    staging_spec: Mapping[str, Any] | None,
    production: Serving | None,
    need: Need,
    free: Need,
) -> Plan:
    """``promote``: production gets exactly the staging revision (same weights digest, same engine arguments)."""
    env = Environment.PRODUCTION
    if staging is None or staging.status is not Status.READY or staging_spec is None:
        found = (
            "no staging revision"
            if staging is None
            else (
                f"staging entry {staging.id} is {staging.status.value}"
                if staging.status is not Status.READY
                else f"staging entry {staging.id} has no recorded spec"
            )
        )
        return Plan(
            "promote",
            env,
            (
                Step(
                    model_id,
                    Action.REFUSE,
                    Mode.NONE,
                    f"expected a ready staging revision "
                    f"to promote, found {found}: run models deploy --environment staging first",
                    None,
                    production,
                ),
            ),
        )
    wanted = Wanted(
        model_id, staging.source, staging.revision, staging.manifest_digest, staging.engine_digest, staging_spec, need
    )
    return replace(plan_deploy(env, [wanted], {model_id: production} if production else {}, free), kind="promote")


def plan_rollback(
    model_id: str,
    environment: Environment,
    entries: Iterable[Entry],
    history: Iterable[Event],
    specs: Mapping[int, Mapping[str, Any]],
    serving: Serving | None,
    need: Need,
    free: Need,
    to: int | None = None,
) -> Plan:
    """``rollback``: back to entry ``to``, or (default) the newest other revision of the model that was ready
    once. Only a revision with a recorded spec can be started again."""
    candidates = {e.id: e for e in entries if e.model_id == model_id and e.environment is environment}
    was_ready = {ev.entry_id for ev in history if ev.to_status is Status.READY}
    current_id = serving.entry.id if serving else None

    def refuse(why: str) -> Plan:
        return Plan("rollback", environment, (Step(model_id, Action.REFUSE, Mode.NONE, why, None, serving),))

    if to is not None:
        target = candidates.get(to)
        if target is None:
            return refuse(
                f"expected an entry of {model_id} ({environment.value}) to roll back to, found no entry "
                f"{to}: see python -m appliance models list --model {model_id}"
            )
        if to == current_id:
            return refuse(f"entry {to} is the generation serving now")
        if to not in was_ready:
            return refuse(f"entry {to} was never ready: only a revision that served once is a rollback target")
    else:
        older = [
            e
            for e in candidates.values()
            if e.id != current_id
            and e.id in was_ready
            and e.id in specs
            and not (serving and _same_key(e, serving.entry))
        ]
        if not older:
            return refuse(
                f"no earlier revision of {model_id} ({environment.value}) that was ready and can be started again"
            )
        target = max(older, key=lambda e: (e.changed_at, e.id))
    spec = specs.get(target.id)
    if spec is None:
        return refuse(f"entry {target.id} has no recorded spec (deployed before the registry kept them)")
    wanted = Wanted(
        model_id,
        target.source,
        target.revision,
        target.manifest_digest,
        target.engine_digest,
        spec,
        need,
        entry_id=target.id,
    )
    return replace(plan_deploy(environment, [wanted], {model_id: serving} if serving else {}, free), kind="rollback")


def _same_key(a: Entry, b: Entry) -> bool:
    return (a.source, a.revision, a.manifest_digest, a.engine_digest) == (
        b.source,
        b.revision,
        b.manifest_digest,
        b.engine_digest,
    )
