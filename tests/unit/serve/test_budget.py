"""Per-key budgets: bucket arithmetic, refill, the UTC day, the 429's headers, and concurrent streams."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.serve.budget import (
    BudgetError,
    Budgets,
    KeyLimits,
    estimate_prompt_tokens,
    go_duration,
    reservation_tokens,
)

pytestmark = pytest.mark.security

NOON = datetime(2026, 12, 4, 12, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 12, 5, 0, 0, tzinfo=UTC).timestamp()


class Clocks:
    """A monotonic clock and a wall clock that move together, by hand."""

    def __init__(self, wall: float = NOON) -> None:
        self.now = 1000.0
        self.wall = wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds

    def budgets(self) -> Budgets:
        return Budgets(clock=lambda: self.now, wall=lambda: self.wall)


def refused(budgets: Budgets, key: str, limits: KeyLimits, tokens: int) -> BudgetError:
    with pytest.raises(BudgetError) as caught:
        budgets.reserve(key, limits, tokens)
    return caught.value


def test_reserve_settle_refund_arithmetic() -> None:
    budgets = Clocks().budgets()
    limits = KeyLimits(rpm=10, tpm=1000, tokens_per_day=5000)
    first = budgets.reserve("alice", limits, 300)
    second = budgets.reserve("alice", limits, 200)
    snap = budgets.snapshot("alice")
    assert (snap.requests, snap.tokens, snap.tokens_today) == (8, 500, 500)

    assert budgets.settle(first, 120)  # 180 back
    assert budgets.refund(second)  # 200 back, the request slot stays spent
    snap = budgets.snapshot("alice")
    assert (snap.requests, snap.tokens, snap.tokens_today) == (8, 880, 120)

    assert not budgets.settle(first, 999) and not budgets.refund(first), "a reservation settles once"
    assert not budgets.settle(second, 50)
    assert budgets.snapshot("alice") == snap
    assert budgets.snapshot("bob").tokens is None, "keys are separate"


def test_settling_above_the_reservation_charges_the_excess_as_debt() -> None:
    clocks = Clocks()
    budgets = clocks.budgets()
    limits = KeyLimits(tpm=600)  # 10 tokens a second
    budgets.settle(budgets.reserve("k", limits, 500), 800)  # the estimate was low: 300 more are charged
    assert budgets.snapshot("k").tokens == -200
    err = refused(budgets, "k", limits, 100)
    assert err.limit == "tpm" and dict(err.headers)["retry-after"] == "30"  # (100 + 200) / 10 per second
    assert dict(err.headers)["x-ratelimit-remaining-tokens"] == "0", "remaining is never negative"
    clocks.advance(30)
    budgets.reserve("k", limits, 100)  # the debt is repaid: 300 tokens earned, 200 of them owed
    assert budgets.snapshot("k").tokens == pytest.approx(0)
    budgets.settle(budgets.reserve("k", limits, 0), -5)  # negative usage counts as 0
    assert budgets.snapshot("k").tokens == pytest.approx(0)


def test_buckets_refill_continuously_up_to_their_capacity() -> None:
    clocks = Clocks()
    budgets = clocks.budgets()
    limits = KeyLimits(rpm=60, tpm=6000)  # 1 request and 100 tokens a second
    for _ in range(60):
        budgets.reserve("k", limits, 10)
    err = refused(budgets, "k", limits, 10)
    assert err.limit == "rpm" and err.code == "rate_limit_exceeded"
    clocks.advance(0.5)
    assert refused(budgets, "k", limits, 10).limit == "rpm"
    clocks.advance(0.5)
    budgets.reserve("k", limits, 10)
    clocks.advance(3600)
    snap = budgets.snapshot("k")
    assert (snap.requests, snap.tokens) == (60, 6000), "an idle hour refills to the capacity, not beyond"


def test_the_daily_quota_resets_at_midnight_utc() -> None:
    clocks = Clocks(wall=MIDNIGHT - 10)
    budgets = clocks.budgets()
    limits = KeyLimits(tokens_per_day=1000)
    budgets.settle(budgets.reserve("k", limits, 900), 900)
    long_stream = budgets.reserve("k", limits, 100)
    err = refused(budgets, "k", limits, 1)
    assert (err.status, err.code, err.limit) == (429, "tokens_per_day_exceeded", "tokens_per_day")
    assert dict(err.headers)["retry-after"] == "10"
    assert "tokens per day (TPD): Limit 1000, Used 1000, Requested 1. Please try again in 10s." in err.message
    clocks.advance(10)  # midnight UTC; the monotonic clock knows nothing of days
    assert budgets.snapshot("k").tokens_today == 0
    budgets.refund(long_stream)  # reserved yesterday: its refund does not credit today
    assert budgets.snapshot("k").tokens_today == 0
    budgets.reserve("k", limits, 1000)
    assert refused(budgets, "k", limits, 1).limit == "tokens_per_day"


def test_a_refusal_is_openai_shaped_and_names_the_limit() -> None:
    budgets = Clocks().budgets()
    limits = KeyLimits(rpm=100, tpm=10_000)
    budgets.reserve("alice", limits, 9_800)
    err = refused(budgets, "alice", limits, 500)
    assert err.status == 429 and err.limit == "tpm"
    assert err.message == (
        "Rate limit reached for key 'alice' on tokens per min (TPM): Limit 10000, Used 9800, "
        "Requested 500. Please try again in 1.8s."
    )
    assert json.loads(err.body()) == {
        "error": {"message": err.message, "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}
    }
    assert dict(err.headers) == {
        "retry-after": "2",
        "retry-after-ms": "1800",
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "99",
        "x-ratelimit-reset-requests": "600ms",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "200",
        "x-ratelimit-reset-tokens": "58.8s",
    }
    assert budgets.snapshot("alice").tokens == 200, "a refusal takes nothing"


def test_the_longest_wait_is_the_one_reported() -> None:
    budgets = Clocks().budgets()
    limits = KeyLimits(rpm=1, tpm=6000, tokens_per_day=100_000)
    budgets.reserve("k", limits, 5000)
    err = refused(budgets, "k", limits, 3000)  # rpm: 60 s; tpm: 20 s
    assert err.limit == "rpm" and dict(err.headers)["retry-after"] == "60"


def test_served_requests_get_openai_headers_and_unlimited_keys_none() -> None:
    clocks = Clocks()
    budgets = clocks.budgets()
    reservation = budgets.reserve("k", KeyLimits(rpm=60, tpm=600), 60)
    assert budgets.headers(reservation) == (
        ("x-ratelimit-limit-requests", "60"),
        ("x-ratelimit-remaining-requests", "59"),
        ("x-ratelimit-reset-requests", "1s"),
        ("x-ratelimit-limit-tokens", "600"),
        ("x-ratelimit-remaining-tokens", "540"),
        ("x-ratelimit-reset-tokens", "6s"),
    )
    free = budgets.reserve("root", KeyLimits(), 10**9)
    assert KeyLimits().unlimited and budgets.headers(free) == ()
    assert budgets.settle(free, 10**9) and not budgets.refund(free)
    assert budgets.tracked_keys() == 1, "an unlimited key keeps no record"


@pytest.mark.parametrize(
    ("limits", "label"),
    [
        (KeyLimits(tpm=1000), "tokens per min (TPM): Limit 1000"),
        (KeyLimits(tokens_per_day=1000), "tokens per day (TPD): Limit 1000"),
    ],
)
def test_a_request_larger_than_a_budget_can_never_fit(limits: KeyLimits, label: str) -> None:
    budgets = Clocks().budgets()
    err = refused(budgets, "k", limits, 1001)
    assert (err.status, err.code, err.limit, err.param) == (429, "request_too_large", "too_large", "max_tokens")
    assert f"Request too large for key 'k' on {label}, Requested 1001" in err.message
    assert "must be reduced" in err.message
    assert "retry-after" not in dict(err.headers), "waiting does not help"
    budgets.reserve("k", limits, 1000)


def test_changed_limits_apply_to_the_next_request() -> None:
    budgets = Clocks().budgets()
    budgets.reserve("k", KeyLimits(tpm=1000), 100)
    reservation = budgets.reserve("k", KeyLimits(tpm=500), 100)  # keys update lowered it: 900 → 500, then 400
    assert budgets.snapshot("k").tokens == 400
    budgets.refund(reservation)
    assert budgets.snapshot("k").tokens == 500, "a refund never fills above the capacity"
    budgets.reserve("k", KeyLimits(rpm=5), 100)  # the tpm limit removed
    snap = budgets.snapshot("k")
    assert (snap.requests, snap.tokens) == (4, None)


def test_idle_keys_are_forgotten_and_todays_usage_is_not() -> None:
    clocks = Clocks(wall=MIDNIGHT - 3600)
    budgets = clocks.budgets()
    for index in range(100):
        budgets.refund(budgets.reserve(f"k{index}", KeyLimits(rpm=60), 1))
    budgets.settle(budgets.reserve("daily", KeyLimits(tokens_per_day=100), 10), 10)
    open_one = budgets.reserve("streaming", KeyLimits(tpm=100), 10)
    assert budgets.tracked_keys() == 102
    clocks.advance(120)
    budgets.reserve("other", KeyLimits(), 1)  # any reserve may sweep
    assert budgets.tracked_keys() == 2, "kept: today's usage and a reservation in flight"
    budgets.settle(open_one, 10)
    clocks.advance(3600)  # past midnight
    budgets.reserve("other", KeyLimits(), 1)
    assert budgets.tracked_keys() == 0


def test_go_durations_like_openai() -> None:
    cases = {
        0: "0s",
        0.0121: "13ms",
        0.012: "12ms",
        0.9994: "1s",
        1: "1s",
        1.8: "1.8s",
        59.9: "59.9s",
        60: "1m0s",
        360: "6m0s",
        90.5: "1m30.5s",
        3723: "1h2m3s",
        86_400: "24h0m0s",
    }
    assert {seconds: go_duration(seconds) for seconds in cases} == cases


def test_the_prompt_estimate_errs_high() -> None:
    chat = {"model": "a-very-long-model-name" * 10, "messages": [{"role": "user", "content": "hello world"}]}
    assert estimate_prompt_tokens(chat) == 5 + 4  # 'user' + 'hello world' = 15 bytes → 5; 4 per message
    assert estimate_prompt_tokens({"prompt": "日本語のテキスト"}) == 8  # 24 bytes: one token a character
    assert estimate_prompt_tokens({"prompt": [[1, 2, 3], [4, 5]]}) == 5  # token ids count one each
    assert estimate_prompt_tokens({"model": "m"}) == 1
    deep: dict = {"prompt": "x"}
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = {"metadata": [deep]}
    assert estimate_prompt_tokens(deep) == 1
    tools = {"messages": [], "tools": [{"type": "function", "function": {"name": "f", "description": "d" * 300}}]}
    assert estimate_prompt_tokens(tools) > 100, "tool schemas are prompt text too"


def test_reservation_is_prompt_plus_the_most_the_engine_may_generate() -> None:
    body = {"prompt": "abc", "max_tokens": 100}
    assert reservation_tokens(body, default_max_tokens=7) == 101
    assert reservation_tokens({"prompt": "abc"}, default_max_tokens=7) == 8
    assert (
        reservation_tokens(
            {"prompt": "abc", "max_tokens": 10, "max_completion_tokens": 50, "n": 3}, default_max_tokens=7
        )
        == 151
    )
    assert reservation_tokens({"prompt": "abc", "max_tokens": True, "n": -1}, default_max_tokens=7) == 8, (
        "malformed values are the checks' business; the reservation falls back to the default"
    )


async def _stream(budgets: Budgets, limits: KeyLimits, ledger: dict, rng: random.Random, clocks: Clocks) -> None:
    """One request as the gate runs it: reserve, stream a few chunks, settle to usage or refund when cut off."""
    tokens = rng.randint(50, 400)
    try:
        reservation = budgets.reserve("k", limits, tokens)
    except BudgetError:
        ledger["refused"] += 1
        return
    ledger["open"] += tokens
    spent = ledger["open"] + ledger["consumed"]
    assert spent <= limits.tpm + (clocks.now - ledger["start"]) * limits.tpm / 60 + 1e-6, "never overspend"
    used = rng.randint(1, tokens)
    try:
        for _ in range(rng.randint(1, 5)):
            await asyncio.sleep(0)
            clocks.advance(rng.choice([0.0, 0.0, 0.01]))
        if rng.random() < 0.2:
            raise ConnectionResetError("client went away")
        budgets.settle(reservation, used)
        ledger["consumed"] += used
    except ConnectionResetError:
        budgets.refund(reservation)
    finally:
        budgets.refund(reservation)  # the gate's finally: a no-op after a settle
        ledger["open"] -= tokens


@pytest.mark.parametrize("seed", range(5))
def test_concurrent_streams_never_overspend_and_end_at_the_right_balance(seed: int) -> None:
    clocks = Clocks()
    budgets = clocks.budgets()
    limits = KeyLimits(rpm=10_000, tpm=20_000)
    ledger = {"open": 0, "consumed": 0, "refused": 0, "start": clocks.now}
    rng = random.Random(seed)

    async def main() -> None:
        await asyncio.gather(*(_stream(budgets, limits, ledger, rng, clocks) for _ in range(400)))

    asyncio.run(main())
    assert ledger["open"] == 0 and ledger["refused"] > 0, "the budget was contended"
    snap = budgets.snapshot("k")
    assert snap.tokens_today == ledger["consumed"]
    elapsed = clocks.now - ledger["start"]
    if elapsed == 0:
        assert snap.tokens == limits.tpm - ledger["consumed"]
    assert snap.tokens <= limits.tpm
    clocks.advance(60)
    assert budgets.snapshot("k").tokens == limits.tpm, "every reservation settled or refunded: nothing held"


def test_threads_share_the_budget_exactly() -> None:
    clocks = Clocks()
    budgets = clocks.budgets()
    limits = KeyLimits(rpm=500, tpm=10**6)
    granted: list[int] = []

    def worker() -> None:
        for _ in range(100):
            try:
                reservation = budgets.reserve("k", limits, 10)
            except BudgetError:
                continue
            granted.append(1)
            budgets.settle(reservation, 5)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 500, "exactly rpm requests, no more, no fewer"
    snap = budgets.snapshot("k")
    assert (snap.requests, snap.tokens, snap.tokens_today) == (0, 10**6 - 2500, 2500)


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(0, 1500)),
        st.tuples(st.just("settle"), st.integers(0, 50), st.floats(0, 1)),
        st.tuples(st.just("refund"), st.integers(0, 50)),
        st.tuples(st.just("advance"), st.floats(0, 30)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_OPS)
def test_property_spending_never_exceeds_capacity_plus_refill(ops: list[tuple]) -> None:
    clocks = Clocks()
    budgets = clocks.budgets()
    limits = KeyLimits(rpm=20, tpm=1000)
    start = clocks.now
    held: list = []  # open reservations
    charged = 0.0  # settled usage + open reservations
    granted = 0
    for op in ops:
        if op[0] == "reserve":
            before = budgets.snapshot("k").tokens
            try:
                held.append(budgets.reserve("k", limits, op[1]))
                granted += 1
                charged += op[1]
                assert before is None or before >= op[1] - 1e-6, "granted only what was there"
            except BudgetError as err:
                assert err.limit in ("rpm", "tpm", "too_large")
                if err.limit == "tpm":
                    assert before is not None and before < op[1], "refused only what was not there"
        elif op[0] in ("settle", "refund") and held:
            reservation = held.pop(op[1] % len(held))
            used = int(reservation.tokens * op[2]) if op[0] == "settle" else 0
            budgets.settle(reservation, used)
            charged -= reservation.tokens - used
        elif op[0] == "advance":
            clocks.advance(op[1])
        elapsed = clocks.now - start
        assert charged <= limits.tpm + elapsed * limits.tpm / 60 + 1e-6
        assert granted <= limits.rpm + elapsed * limits.rpm / 60 + 1e-6
        snap = budgets.snapshot("k")
        assert snap.tokens is None or snap.tokens <= limits.tpm
    for reservation in held:
        budgets.refund(reservation)
    clocks.advance(60)
    assert budgets.snapshot("k").tokens in (None, limits.tpm)
