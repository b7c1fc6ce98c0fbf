"""should_renew: a third of the lifetime or renew_before_days, whichever comes first; days_left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.certs.inspect import CertInfo, days_left
from appliance.certs.renewal import should_renew

START = datetime(2026, 1, 1, tzinfo=UTC)


def cert(days: float) -> CertInfo:
    return CertInfo("x", ("x",), "ca", 1, START, START + timedelta(days=days))


@pytest.mark.parametrize(
    ("lifetime", "elapsed", "expected"),
    [
        (90, 59, False),  # Let's Encrypt: 31 days left > max(30, 30)
        (90, 60, True),  # 30 left: both thresholds meet
        (90, 61, True),
        (365, 200, False),  # 165 left > a third (121.7 d)
        (365, 250, True),  # 115 left: the third comes before the 30 days
        (6, 1, True),  # short-lived: 5 left < 30 days
    ],
)
def test_examples(lifetime: float, elapsed: float, expected: bool) -> None:
    assert should_renew(cert(lifetime), START + timedelta(days=elapsed)) is expected


def test_renew_before_days_is_honoured() -> None:
    c = cert(90)
    assert not should_renew(c, START + timedelta(days=40), renew_before_days=30)
    assert should_renew(c, START + timedelta(days=40), renew_before_days=60)


def test_expired_certificates_are_due_and_have_negative_days_left() -> None:
    c = cert(90)
    later = START + timedelta(days=100)
    assert should_renew(c, later) and days_left(c, later) == pytest.approx(-10)


@given(lifetime=st.floats(1, 2000), elapsed=st.floats(0, 2000), before=st.integers(1, 365))
def test_property_matches_the_rule(lifetime: float, elapsed: float, before: int) -> None:
    c, now = cert(lifetime), START + timedelta(days=elapsed)
    left = lifetime - elapsed
    decision = should_renew(c, now, renew_before_days=before)
    if left > max(before, lifetime / 3) + 1e-6:
        assert not decision
    if left < max(before, lifetime / 3) - 1e-6:
        assert decision
