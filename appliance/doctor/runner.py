"""Run the checks concurrently, each with its own timeout; a crashing or slow check is a finding, not a crash."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    slug: str
    title: str
    findings: tuple[Finding, ...]
    seconds: float


def selected(checks: Sequence[Check], ctx: DoctorContext) -> list[Check]:
    chosen = []
    for check in checks:
        if check.needs_stack and ctx.preflight:
            continue
        if check.needs_config and ctx.config is None:
            continue
        if check.applies(ctx):
            chosen.append(check)
    return chosen


def _run_one(check: Check, ctx: DoctorContext) -> tuple[list[Finding], float]:
    started = time.perf_counter()
    try:
        findings = check.run(ctx)
    except Exception as err:  # the runner's boundary: one broken check must not hide the others
        _LOGGER.exception("doctor check %s failed", check.slug)
        findings = [
            Finding(
                check.slug,
                Level.ERROR,
                check.title,
                expected="the check to run",
                found=f"it failed: {type(err).__name__}: {err}",
                fix="run with --log-level DEBUG and report it as a bug",
            )
        ]
    return findings, time.perf_counter() - started


async def run_checks(checks: Sequence[Check], ctx: DoctorContext) -> list[CheckResult]:
    chosen = selected(checks, ctx)
    futures = [_in_daemon_thread(check, ctx) for check in chosen]
    results: list[CheckResult] = []
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(f, check.timeout_s) for f, check in zip(futures, chosen, strict=True)),
        return_exceptions=True,
    )
    for check, outcome in zip(chosen, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            findings = [
                Finding(
                    check.slug,
                    Level.WARNING,
                    check.title,
                    expected=f"an answer within {check.timeout_s:g} s",
                    found="no answer (timed out)" if isinstance(outcome, TimeoutError) else repr(outcome),
                    fix="find out what is slow (the engine, DNS, a URL) and run doctor again",
                )
            ]
            results.append(CheckResult(check.slug, check.title, tuple(findings), check.timeout_s))
        else:
            findings, seconds = outcome
            results.append(CheckResult(check.slug, check.title, tuple(findings), seconds))
    return results


def _in_daemon_thread(check: Check, ctx: DoctorContext) -> asyncio.Future[tuple[list[Finding], float]]:
    """Run a check in a daemon thread: one that hangs past its timeout is abandoned, never waited for at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[tuple[list[Finding], float]] = loop.create_future()

    def settle(value: tuple[list[Finding], float]) -> None:
        if not future.done():
            future.set_result(value)

    def target() -> None:
        value = _run_one(check, ctx)
        try:
            loop.call_soon_threadsafe(settle, value)
        except RuntimeError:  # the run ended (timed out) and its loop is closed
            pass

    threading.Thread(target=target, name=f"doctor-{check.slug}", daemon=True).start()
    return future


def exit_code(results: Sequence[CheckResult]) -> int:
    return 1 if any(f.level.is_problem for r in results for f in r.findings) else 0
