"""Per-key budgets: requests per minute, tokens per minute and tokens per UTC day, kept in the ingress process.

**Algorithm: token buckets**, one for requests and one for tokens per key, each holding at most its
per-minute limit and refilled continuously at limit/60 per second — how OpenAI-style limits behave: an idle
key may spend a whole minute's budget at once, then earns it back smoothly (no cliff at a window edge, as a
fixed window has; no per-event log to keep, as a sliding window has). The daily quota is a plain counter of
tokens charged since the last midnight UTC (the wall clock decides the day; the buckets use the monotonic
clock, so a clock step cannot refill them).

**Life of a request** (the gate's calls):

1. ``reserve(key_name, limits, tokens)`` before forwarding, with ``tokens = reservation_tokens(body, ...)``
   (an estimate of the prompt plus the most the engine may generate). It takes one request slot and
   ``tokens`` from the buckets and the day, or raises :class:`BudgetError` (a 429 in the OpenAI shape, with
   ``Retry-After``, ``retry-after-ms`` and ``x-ratelimit-*`` headers) without taking anything.
2. ``headers(reservation)`` for the response: OpenAI's six ``x-ratelimit-*`` headers.
3. At the end exactly one of ``settle(reservation, prompt_tokens + completion_tokens)`` (the engine's usage:
   the difference is given back, or an excess charged, which may leave the bucket in debt so later requests
   wait for it) or ``refund(reservation)`` (error, client gone, no usage): every reserved token comes back,
   the request slot does not — a failed request still counts toward ``rpm``, as OpenAI counts it, so a
   client retrying failures in a tight loop is still paced. Both are idempotent: the first call wins.

**A request larger than the key's tpm or daily quota** can never fit, so it is refused at once with a 429
like OpenAI's "Request too large … The input or output tokens must be reduced" (code ``request_too_large``,
no ``Retry-After``: waiting does not help). When the client leaves ``max_tokens`` unset the gate fills in the
model's cap, which is what gets reserved; ``keys create/update`` warn when a budget is below a cap.

**Several ingress replicas** (``SERVE_INGRESS_REPLICAS`` > 1): each replica keeps its own buckets, so a key
gets up to N times its limits (requests are spread over the replicas). Exact limits with N replicas need a
shared store (Redis, with the same bucket arithmetic in a Lua script); not built, as one ingress replica is
the default.

Memory: one small record per key that has spent something recently; a key whose buckets are full again,
with nothing in flight and nothing charged today, is forgotten. Key names come from authenticated keys, so
the number of records is bounded by the configured keys.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from appliance.config.secrets import KeyLimits
from appliance.serve.errors import ApiError

__all__ = ["BudgetError", "Budgets", "KeyLimits", "Reservation", "estimate_prompt_tokens", "reservation_tokens"]

DAY = 86_400
_SWEEP_EVERY = 60.0  # seconds of the monotonic clock between passes that forget idle keys
_EPSILON = 1e-9  # float slack when comparing refilled levels

# the `limit` of a BudgetError, also the `limit` tag of the refusal metric (fixed strings only)
RPM, TPM, TOKENS_PER_DAY, TOO_LARGE = "rpm", "tpm", "tokens_per_day", "too_large"


@dataclass(eq=False)  # like ApiError: an exception must take __traceback__
class BudgetError(ApiError):
    """A 429 for a spent budget. ``limit`` is which one: ``rpm``, ``tpm``, ``tokens_per_day`` or ``too_large``."""

    limit: str = ""


class Reservation:
    """What one request holds until it is settled or refunded. Opaque to callers; settles once."""

    __slots__ = ("key_name", "limits", "tokens", "_day", "_tracked", "done")

    def __init__(self, key_name: str, limits: KeyLimits, tokens: int, day: int, tracked: bool) -> None:
        self.key_name = key_name
        self.limits = limits
        self.tokens = tokens  # reserved tokens
        self._day = day
        self._tracked = tracked  # False when the key was unlimited at reservation: nothing to give back
        self.done = False

    def __repr__(self) -> str:
        return f"Reservation({self.key_name!r}, tokens={self.tokens}, done={self.done})"


@dataclass(frozen=True)
class Snapshot:
    """A key's balances now: bucket levels (None = unlimited; negative = in debt) and tokens charged today."""

    requests: float | None
    tokens: float | None
    tokens_today: int


class _Bucket:
    __slots__ = ("capacity", "level", "stamp")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = capacity
        self.level = float(capacity)
        self.stamp = now

    @property
    def rate(self) -> float:  # per second
        return self.capacity / 60.0

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(float(self.capacity), self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 when it is now)."""
        missing = amount - self.level
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def reset_in(self) -> float:
        """Seconds until the bucket is full again (OpenAI's ``x-ratelimit-reset-*``)."""
        return max(0.0, (self.capacity - self.level) / self.rate)

    def give_back(self, amount: float) -> None:
        self.level = min(float(self.capacity), self.level + amount)


def _synced(bucket: _Bucket | None, capacity: int | None, now: float) -> _Bucket | None:
    """``bucket`` refilled to ``now`` and resized to ``capacity`` (a key's limits may change while it is used)."""
    if capacity is None:
        return None
    if bucket is None:
        return _Bucket(capacity, now)
    bucket.refill(now)
    if bucket.capacity != capacity:
        bucket.capacity = capacity
        bucket.level = min(bucket.level, float(capacity))
    return bucket


class _KeyState:
    __slots__ = ("requests", "tokens", "day", "tokens_today", "open")

    def __init__(self, day: int) -> None:
        self.requests: _Bucket | None = None
        self.tokens: _Bucket | None = None
        self.day = day
        self.tokens_today = 0
        self.open = 0  # reservations not yet settled

    def sync(self, limits: KeyLimits, now: float, day: int) -> None:
        """Refill to ``now``, roll the day over, and apply ``limits`` (they may change while the key is used)."""
        self.requests = _synced(self.requests, limits.rpm, now)
        self.tokens = _synced(self.tokens, limits.tpm, now)
        self.refresh(now, day)

    def refresh(self, now: float, day: int) -> None:
        """Refill to ``now`` and roll the day over, keeping the limits the state has."""
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.refill(now)
        if day != self.day:
            self.day, self.tokens_today = day, 0

    def idle(self) -> bool:
        full = all(b is None or b.level >= b.capacity - _EPSILON for b in (self.requests, self.tokens))
        return full and self.open == 0 and self.tokens_today == 0


class Budgets:
    """Every key's budgets in this process. ``clock``: monotonic seconds (buckets); ``wall``: Unix time (the
    UTC day). Thread-safe (one lock; the ingress is one event loop, the lock is cheap insurance)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._states: dict[str, _KeyState] = {}
        self._swept = clock()

    def reserve(self, key_name: str, limits: KeyLimits, tokens: int) -> Reservation:
        """Take one request and ``tokens`` from ``key_name``'s budgets, or raise :class:`BudgetError` (taking
        nothing). An unlimited key always gets a reservation, so the caller's path is the same for every key."""
        tokens = max(0, int(tokens))
        with self._lock:
            now, wall = self._clock(), self._wall()
            day = int(wall // DAY)
            self._sweep(now, day)
            if limits.unlimited:
                return Reservation(key_name, limits, tokens, day, tracked=False)
            state = self._states.get(key_name)
            if state is None:
                state = self._states[key_name] = _KeyState(day)
            state.sync(limits, now, day)
            self._check(key_name, limits, state, tokens, wall)
            if state.requests is not None:
                state.requests.level -= 1
            if state.tokens is not None:
                state.tokens.level -= tokens
            state.tokens_today += tokens
            state.open += 1
            return Reservation(key_name, limits, tokens, day, tracked=True)

    def settle(self, reservation: Reservation, used_tokens: int) -> bool:
        """Charge the engine's actual usage instead of the reservation: give back the difference, or charge the
        excess (the bucket may go into debt). Returns False when the reservation was already settled/refunded."""
        used = max(0, int(used_tokens))
        with self._lock:
            if reservation.done:
                return False
            reservation.done = True
            state = self._states.get(reservation.key_name) if reservation._tracked else None
            if state is None:
                return True
            state.refresh(self._clock(), self._today())
            delta = reservation.tokens - used  # > 0: give back; < 0: charge the excess
            if state.tokens is not None:
                if delta >= 0:
                    state.tokens.give_back(delta)
                else:
                    state.tokens.level += delta
            if state.day == reservation._day:  # a request that ran past midnight leaves the new day alone
                state.tokens_today = max(0, state.tokens_today - delta)
            state.open = max(0, state.open - 1)
            return True

    def refund(self, reservation: Reservation) -> bool:
        """Give back every reserved token (error, client gone, no usage reported). The request slot stays
        spent. Returns False when the reservation was already settled/refunded."""
        return self.settle(reservation, 0)

    def headers(self, reservation: Reservation) -> tuple[tuple[str, str], ...]:
        """OpenAI's ``x-ratelimit-*`` headers for a served request (none for an unlimited key)."""
        with self._lock:
            state = self._states.get(reservation.key_name)
            if state is None or reservation.limits.unlimited:
                return ()
            state.refresh(self._clock(), self._today())
            return _rate_headers(state)

    def snapshot(self, key_name: str) -> Snapshot:
        """The key's balances now (for tests and an admin view); a key never seen is full."""
        with self._lock:
            state = self._states.get(key_name)
            if state is None:
                return Snapshot(None, None, 0)
            state.refresh(self._clock(), self._today())
            return Snapshot(_level(state.requests), _level(state.tokens), state.tokens_today)

    def tracked_keys(self) -> int:
        """How many keys have a record now (memory stays bounded: idle keys are forgotten)."""
        with self._lock:
            return len(self._states)

    def _today(self) -> int:
        return int(self._wall() // DAY)

    def _check(self, key_name: str, limits: KeyLimits, state: _KeyState, tokens: int, wall: float) -> None:
        for capacity, label in ((limits.tpm, "tokens per min (TPM)"), (limits.tokens_per_day, "tokens per day (TPD)")):
            if capacity is not None and tokens > capacity:
                raise BudgetError(
                    429,
                    f"Request too large for key {key_name!r} on {label}: Limit {capacity}, Requested {tokens} "
                    "(the prompt's estimate plus max_tokens). The input or output tokens must be reduced in order "
                    "to run successfully.",
                    "request_too_large",
                    "max_tokens",
                    _rate_headers(state),
                    TOO_LARGE,
                )
        waits: list[tuple[float, str, str, int, int]] = []  # (seconds, limit, label, capacity, used)
        if state.requests is not None:
            waits.append(
                (
                    state.requests.wait_for(1),
                    RPM,
                    "requests per min (RPM)",
                    state.requests.capacity,
                    _used(state.requests),
                )
            )
        if state.tokens is not None:
            waits.append(
                (state.tokens.wait_for(tokens), TPM, "tokens per min (TPM)", state.tokens.capacity, _used(state.tokens))
            )
        if limits.tokens_per_day is not None and state.tokens_today + tokens > limits.tokens_per_day:
            waits.append(
                (
                    (state.day + 1) * DAY - wall,
                    TOKENS_PER_DAY,
                    "tokens per day (TPD)",
                    limits.tokens_per_day,
                    state.tokens_today,
                )
            )
        wait, limit, label, capacity, used = max(waits, default=(0.0, "", "", 0, 0))
        if wait <= 0:
            return
        requested = 1 if limit == RPM else tokens
        headers = (
            ("retry-after", str(max(1, math.ceil(wait)))),
            ("retry-after-ms", str(max(1, math.ceil(wait * 1000)))),
            *_rate_headers(state),
        )
        raise BudgetError(
            429,
            f"Rate limit reached for key {key_name!r} on {label}: Limit {capacity}, Used {used}, Requested "
            f"{requested}. Please try again in {go_duration(wait)}.",
            "tokens_per_day_exceeded" if limit == TOKENS_PER_DAY else "rate_limit_exceeded",
            None,
            headers,
            limit,
        )

    def _sweep(self, now: float, day: int) -> None:
        if now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        for state in self._states.values():
            state.refresh(now, day)
        for name in [name for name, state in self._states.items() if state.idle()]:
            del self._states[name]


def _level(bucket: _Bucket | None) -> float | None:
    return None if bucket is None else bucket.level


def _used(bucket: _Bucket) -> int:
    return max(0, math.ceil(bucket.capacity - bucket.level - _EPSILON))


def _rate_headers(state: _KeyState) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for name, bucket in (("requests", state.requests), ("tokens", state.tokens)):
        if bucket is not None:
            headers += [
                (f"x-ratelimit-limit-{name}", str(bucket.capacity)),
                (f"x-ratelimit-remaining-{name}", str(max(0, math.floor(bucket.level + _EPSILON)))),
                (f"x-ratelimit-reset-{name}", go_duration(bucket.reset_in())),
            ]
    return tuple(headers)


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes it (Go's format, rounded up to the millisecond): ``12ms``, ``1.8s``, ``6m0s``,
    ``2h3m0s``."""
    ms = max(0, math.ceil(round(seconds * 1000, 6)))  # round first: 0.0121 s is 12.100000000000001 ms
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}" + (f".{rest % 1000:03d}".rstrip("0") if rest % 1000 else "") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


# --- what a request may cost, before the engine tokenizes it -------------------------------------------------

_BYTES_PER_TOKEN = 3  # English runs ~4 bytes a token, CJK ~3 (one character, one token): 3 errs high
_PER_MESSAGE = 4  # chat template tokens around each message (role, separators)


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """A conservative guess of a chat/completions body's prompt tokens: the UTF-8 bytes of every string in it
    (messages, prompt, tools, response_format…; not ``model``) / 3, rounded up, plus 4 per chat message; token
    ids in a ``prompt`` list count one each. At least 1. ``settle`` replaces it with the engine's count, so
    erring high only delays a request near the limit, never over-charges. Base64 media count by their size."""
    text_bytes = 0
    token_ids = 0
    for value, in_prompt in _leaves(body):
        if isinstance(value, str):
            text_bytes += len(value.encode("utf-8", "surrogatepass"))
        elif in_prompt and isinstance(value, int) and not isinstance(value, bool):
            token_ids += 1
    messages = body.get("messages")
    overhead = _PER_MESSAGE * len(messages) if isinstance(messages, list) else 0
    return max(1, -(-text_bytes // _BYTES_PER_TOKEN) + token_ids + overhead)


def reservation_tokens(body: Mapping[str, Any], *, default_max_tokens: int) -> int:
    """What to reserve for a request: the prompt's estimate plus the most it may generate — ``max_tokens`` /
    ``max_completion_tokens`` (the larger; ``default_max_tokens`` when neither is set) times ``n`` (or
    ``best_of``) choices."""
    limits = [v for v in (body.get("max_tokens"), body.get("max_completion_tokens")) if _whole(v) and v > 0]
    choices = max([v for v in (body.get("n"), body.get("best_of")) if _whole(v) and v > 0] or [1])
    return estimate_prompt_tokens(body) + max(limits, default=default_max_tokens) * choices


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _leaves(body: Mapping[str, Any]) -> Iterator[tuple[Any, bool]]:
    """Every scalar in the body with whether it sits under ``prompt``; iterative (no recursion limit)."""
    stack: list[tuple[Any, bool]] = [(value, key == "prompt") for key, value in body.items() if key != "model"]
    while stack:
        value, in_prompt = stack.pop()
        if isinstance(value, dict):
            stack.extend((item, in_prompt) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, in_prompt) for item in value)
        else:
            yield value, in_prompt
