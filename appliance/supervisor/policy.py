"""The watchdog's restart policy, decided purely: ``should_restart(history, now, policy)``.

A service has a restart budget that decays: each past restart weighs ``0.5 ** (age / half_life)``, so
a restart an hour ago (half-life 10 min) barely counts while three in the last minute count almost three.
The next restart waits ``base * 2 ** weight`` seconds (capped, with jitter). When the weight of past
restarts reaches the budget, the watchdog gives up and raises an alert instead of flapping forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True)
class RestartPolicy:
    budget: float = 5.0
    half_life_s: float = 600.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    jitter: float = 0.2  # the delay is multiplied by a factor in [1 - jitter, 1]


class Reason(StrEnum):
    DIED = "died"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class ServiceHistory:
    """What the watchdog knows about one service when it considers a restart."""

    service: str
    reason: Reason
    restarts: tuple[datetime, ...] = ()  # times the watchdog restarted it
    started_at: datetime | None = None  # last start of the container
    start_period_s: float = 0.0
    stopped_by_operator: bool = False
    gave_up: bool = False
    watched: bool = True


class Action(StrEnum):
    RESTART = "restart"
    WAIT = "wait"  # inside the start period: look again at ``at``
    GIVE_UP = "give-up"
    LEAVE = "leave"  # stopped on purpose, not watched, or given up already


@dataclass(frozen=True)
class Decision:
    action: Action
    delay_s: float = 0.0
    why: str = ""
    weight: float = field(default=0.0)


def restart_weight(restarts: tuple[datetime, ...], now: datetime, half_life_s: float) -> float:
    """The decayed count of past restarts (each one halves every ``half_life_s``)."""
    weight: float = sum(0.5 ** (max(0.0, (now - t).total_seconds()) / half_life_s) for t in restarts)
    return weight


def should_restart(
    history: ServiceHistory, now: datetime, policy: RestartPolicy = RestartPolicy(), *, jitter_draw: float = 1.0
) -> Decision:
    """What to do about a service that died or turned unhealthy. ``jitter_draw`` in [0, 1] (random in the caller)."""
    if not history.watched:
        return Decision(Action.LEAVE, why=f"{history.service} is labelled appliance.watchdog=false")
    if history.stopped_by_operator:
        return Decision(Action.LEAVE, why=f"{history.service} was stopped on purpose")
    if history.gave_up:
        return Decision(Action.LEAVE, why=f"the watchdog already gave up on {history.service}")
    if history.reason is Reason.UNHEALTHY and history.started_at is not None:
        age = (now - history.started_at).total_seconds()
        if age < history.start_period_s:
            return Decision(
                Action.WAIT,
                delay_s=history.start_period_s - age,
                why=f"{history.service} is still in its start period ({age:.0f}/{history.start_period_s:.0f} s)",
            )
    weight = restart_weight(history.restarts, now, policy.half_life_s)
    if weight + 1 > policy.budget:
        return Decision(
            Action.GIVE_UP,
            weight=weight,
            why=f"{history.service} was restarted {len(history.restarts)} times recently "
            f"(weight {weight:.1f} of budget {policy.budget:g})",
        )
    delay = min(policy.backoff_max_s, policy.backoff_base_s * 2**weight) if history.restarts else 0.0
    delay *= 1 - policy.jitter * (1 - min(1.0, max(0.0, jitter_draw)))
    return Decision(
        Action.RESTART,
        delay_s=delay,
        weight=weight,
        why=f"{history.service} {history.reason.value}; restart {len(history.restarts) + 1} after {delay:.1f} s",
    )
