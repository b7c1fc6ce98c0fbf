"""should_restart: budget with decay, backoff with jitter, start period, operator stop, give-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.supervisor.policy import (
    Action,
    Reason,
    RestartPolicy,
    ServiceHistory,
    restart_weight,
    should_restart,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = RestartPolicy(budget=3, half_life_s=600, backoff_base_s=1, backoff_max_s=60, jitter=0.2)


def history(**kw) -> ServiceHistory:
    base = {"service": "serve", "reason": Reason.DIED}
    base.update(kw)
    return ServiceHistory(**base)


def ago(*seconds: float) -> tuple[datetime, ...]:
    return tuple(NOW - timedelta(seconds=s) for s in seconds)


def test_first_death_restarts_at_once() -> None:
    decision = should_restart(history(), NOW, POLICY)
    assert decision.action is Action.RESTART and decision.delay_s == 0


def test_backoff_doubles_with_recent_restarts() -> None:
    one = should_restart(history(restarts=ago(1)), NOW, POLICY)
    two = should_restart(history(restarts=ago(2, 1)), NOW, POLICY)
    assert one.action is two.action is Action.RESTART
    assert one.delay_s == pytest.approx(2.0, rel=0.01)
    assert two.delay_s == pytest.approx(4.0, rel=0.01)


def test_backoff_is_capped() -> None:
    policy = RestartPolicy(budget=100, backoff_base_s=1, backoff_max_s=5)
    assert should_restart(history(restarts=ago(*range(1, 20))), NOW, policy).delay_s == 5


def test_jitter_shortens_the_delay_by_at_most_its_fraction() -> None:
    low = should_restart(history(restarts=ago(1)), NOW, POLICY, jitter_draw=0.0)
    assert low.delay_s == pytest.approx(2.0 * 0.8, rel=0.01)


def test_budget_spent_gives_up() -> None:
    decision = should_restart(history(restarts=ago(30, 20, 10)), NOW, POLICY)
    assert decision.action is Action.GIVE_UP
    assert "3 times" in decision.why


def test_old_restarts_decay_out_of_the_budget() -> None:
    decision = should_restart(history(restarts=ago(7200, 7100, 7000)), NOW, POLICY)
    assert decision.action is Action.RESTART
    assert decision.delay_s < 1.1


def test_unhealthy_inside_start_period_waits_for_its_end() -> None:
    decision = should_restart(
        history(reason=Reason.UNHEALTHY, started_at=NOW - timedelta(seconds=100), start_period_s=900), NOW, POLICY
    )
    assert decision.action is Action.WAIT and decision.delay_s == pytest.approx(800)


def test_died_inside_start_period_is_restarted() -> None:
    decision = should_restart(history(started_at=NOW - timedelta(seconds=5), start_period_s=900), NOW, POLICY)
    assert decision.action is Action.RESTART


def test_unhealthy_after_start_period_restarts() -> None:
    decision = should_restart(
        history(reason=Reason.UNHEALTHY, started_at=NOW - timedelta(seconds=901), start_period_s=900), NOW, POLICY
    )
    assert decision.action is Action.RESTART


@pytest.mark.parametrize("flag", ["stopped_by_operator", "gave_up"])
def test_operator_stop_and_given_up_are_left_alone(flag: str) -> None:
    assert should_restart(history(**{flag: True}), NOW, POLICY).action is Action.LEAVE


def test_unwatched_service_is_left_alone() -> None:
    assert should_restart(history(watched=False), NOW, POLICY).action is Action.LEAVE


@given(st.lists(st.floats(min_value=0, max_value=86400), max_size=30), st.floats(min_value=0, max_value=1))
def test_never_restarts_beyond_the_budget_and_delay_is_bounded(ages: list[float], draw: float) -> None:
    restarts = ago(*ages)
    decision = should_restart(history(restarts=restarts), NOW, POLICY, jitter_draw=draw)
    weight = restart_weight(restarts, NOW, POLICY.half_life_s)
    assert weight <= len(ages) + 1e-9
    if decision.action is Action.RESTART:
        assert weight + 1 <= POLICY.budget
        assert 0 <= decision.delay_s <= POLICY.backoff_max_s
    else:
        assert decision.action is Action.GIVE_UP
