"""The transition rules, decided purely."""

from __future__ import annotations

import pytest

from appliance.registry.states import ALLOWED, INITIAL, Status, decide_transition

S = Status


def test_every_status_has_rules_and_the_happy_path_is_allowed() -> None:
    assert set(ALLOWED) == set(Status)
    path = [S.PENDING, S.LOADING, S.SMOKE_TESTING, S.READY, S.DISABLED, S.READY, S.ROLLED_BACK, S.PENDING]
    assert decide_transition(None, INITIAL).allowed
    for before, after in zip(path, path[1:], strict=False):
        assert decide_transition(before, after).allowed, (before, after)


@pytest.mark.parametrize(
    ("current", "target", "why"),
    [
        (None, S.READY, "a new revision starts as pending, not ready"),
        (S.PENDING, S.READY, "pending may change to failed, loading; not to ready"),
        (S.READY, S.READY, "already ready"),
        (S.FAILED, S.READY, "failed may change to pending; not to ready"),
        (S.ROLLED_BACK, S.DISABLED, "rolled-back may change to pending; not to disabled"),
        (S.SMOKE_TESTING, S.DISABLED, "smoke-testing may change to failed, ready; not to disabled"),
        (S.DISABLED, S.LOADING, "disabled may change to ready, rolled-back; not to loading"),
    ],
)
def test_refusals_say_why(current: Status | None, target: Status, why: str) -> None:
    decision = decide_transition(current, target)
    assert not decision.allowed and decision.reason == why


def test_no_status_may_change_to_itself_and_ends_only_restart_as_pending() -> None:
    for status in Status:
        assert status not in ALLOWED[status]
    assert ALLOWED[S.FAILED] == ALLOWED[S.ROLLED_BACK] == {S.PENDING}
