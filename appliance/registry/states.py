"""Statuses of a model revision and which changes between them are allowed. Pure: no store, no clock.

A revision goes ``pending → loading → (smoke-testing →) ready``; a ready one may be ``disabled`` (and enabled
again), replaced (``rolled-back``) or found broken (``failed``). ``failed`` and ``rolled-back`` are where a
revision ends, unless the same revision is deployed again (back to ``pending``). A ready revision that is
loaded again (the stack restarted) goes back to ``loading``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    LOADING = "loading"
    SMOKE_TESTING = "smoke-testing"
    READY = "ready"
    DISABLED = "disabled"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"


class Environment(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"


S = Status
# From each status, the statuses it may change to.
ALLOWED: dict[Status, frozenset[Status]] = {
    S.PENDING: frozenset({S.LOADING, S.FAILED}),
    # loading → ready without a smoke test: `serve` records a deploy that way until smoke tests exist
    S.LOADING: frozenset({S.SMOKE_TESTING, S.READY, S.FAILED}),
    S.SMOKE_TESTING: frozenset({S.READY, S.FAILED}),
    S.READY: frozenset({S.LOADING, S.DISABLED, S.FAILED, S.ROLLED_BACK}),
    S.DISABLED: frozenset({S.READY, S.ROLLED_BACK}),
    S.FAILED: frozenset({S.PENDING}),
    S.ROLLED_BACK: frozenset({S.PENDING}),
}
# Where a brand-new revision starts.
INITIAL = S.PENDING
# Statuses in which an engine of the revision is (or may be) running.
LIVE = frozenset({S.LOADING, S.SMOKE_TESTING, S.READY, S.DISABLED})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def decide_transition(current: Status | None, target: Status) -> Decision:
    """Whether a revision in ``current`` (``None``: not recorded yet) may change to ``target``, and why not."""
    if current is None:
        if target is INITIAL:
            return Decision(True, "new revision")
        return Decision(False, f"a new revision starts as {INITIAL.value}, not {target.value}")
    if target is current:
        return Decision(False, f"already {current.value}")
    if target in ALLOWED[current]:
        return Decision(True, f"{current.value} → {target.value}")
    allowed = ", ".join(sorted(s.value for s in ALLOWED[current])) or "nothing"
    return Decision(False, f"{current.value} may change to {allowed}; not to {target.value}")
