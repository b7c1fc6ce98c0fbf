"""The supervisor's scheduled jobs: certificate renewal check and log rotation, run on a jittered timer.

The renewal job takes the certs module's ``renew`` by injection (the daemon passes
``appliance.certs.renewal.renew``) and reports the days left of the certificate nginx serves; the rotation job rotates every ``*.log`` under LOG_DIR (audit, appliance, nginx) and asks nginx
to reopen its files through the reopen hook.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.certs.errors import CertError
from appliance.certs.inspect import days_left, load_cert_info, utc_now
from appliance.logs.rotation import ReopenHook, rotate_file
from appliance.logs.rotation_policy import RotationPolicy
from appliance.telemetry.notifier import SupervisorNotifier

_LOGGER = logging.getLogger(__name__)


async def every(
    interval_s: float,
    job: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    jitter: float = 0.1,
    first_delay_s: float = 0.0,
) -> None:
    """Run ``job`` now-ish and then every ``interval_s`` (± jitter) until ``stop``; a failing run is logged."""
    delay = first_delay_s
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
            return
        except TimeoutError:
            pass
        try:
            await job()
        except Exception:  # the scheduler's boundary: one failed run must not end the schedule
            _LOGGER.exception("scheduled job %s failed", getattr(job, "__name__", job))
        delay = interval_s * (1 + jitter * (2 * random.random() - 1))


def cert_days_left(path: Path, now: datetime | None = None) -> float | None:
    """Days until the certificate at ``path`` expires (None when there is none, or it does not parse)."""
    try:
        info = load_cert_info(path)
    except CertError:
        return None
    return days_left(info, now or utc_now())


class RenewalJob:
    def __init__(
        self,
        config: Any,
        notifier: SupervisorNotifier,
        *,
        cert_path: Path | None,
        renew: Callable[..., Any],
        reload_nginx: Callable[[], None] | None = None,
        test_nginx: Callable[[], None] | None = None,
    ) -> None:
        self.config, self.notifier, self.cert_path = config, notifier, cert_path
        self.renew, self.reload_nginx, self.test_nginx = renew, reload_nginx, test_nginx

    async def __call__(self) -> None:
        if self.cert_path is not None:
            self.notifier.certificate(await asyncio.to_thread(cert_days_left, self.cert_path))
        kwargs: dict[str, Any] = {"alert": self._alert, "reload_nginx": self.reload_nginx}
        if self.test_nginx is not None:
            kwargs["test_nginx"] = self.test_nginx
        result = await asyncio.to_thread(self.renew, self.config, **kwargs)
        ok, reason = bool(getattr(result, "ok", False)), str(getattr(result, "reason", ""))
        if getattr(result, "renewed", True) or not ok:
            self.notifier.renewal(ok, reason)
        if self.cert_path is not None:
            self.notifier.certificate(await asyncio.to_thread(cert_days_left, self.cert_path))

    def _alert(self, title: str, text: str) -> None:
        _LOGGER.error("%s: %s", title, text)


class RotationJob:
    def __init__(
        self,
        log_dir: Path,
        policy: RotationPolicy,
        notifier: SupervisorNotifier,
        reopen_hooks: dict[str, ReopenHook] | None = None,
    ) -> None:
        self.log_dir, self.policy, self.notifier = log_dir, policy, notifier
        self.reopen_hooks = reopen_hooks or {}

    async def __call__(self) -> None:
        await asyncio.to_thread(self.run_once)

    def run_once(self) -> int:
        failures = 0
        for path in sorted(self.log_dir.rglob("*.log")):
            hook = next((h for prefix, h in self.reopen_hooks.items() if path.name.startswith(prefix)), None)
            try:
                done = rotate_file(path, self.policy, reopen=hook)
            except OSError as err:  # per-item boundary: go through every log, report once
                failures += 1
                _LOGGER.error("could not rotate %s: %s", path, err)
                continue
            if done is not None:
                self.notifier.rotated(path.name, done.size)
        if failures:
            _LOGGER.error("log rotation: %d file(s) could not be rotated", failures)
        return failures


class DoctorJob:
    """Runs the doctor's checks that make sense from inside the stack (``Check.in_stack``); one 1/0 gauge each."""

    def __init__(self, ctx: Any, notifier: SupervisorNotifier) -> None:
        self.ctx, self.notifier = ctx, notifier

    async def __call__(self) -> None:
        from appliance.doctor.checks import all_checks
        from appliance.doctor.runner import run_checks

        checks = [c for c in all_checks() if c.in_stack]
        self.ctx.now = datetime.now(tz=UTC)
        for result in await run_checks(checks, self.ctx):
            ok = not any(f.level.is_problem for f in result.findings)
            self.notifier.check_result(result.slug, ok)
            if not ok:
                _LOGGER.warning(
                    "doctor check %s: %s",
                    result.slug,
                    "; ".join(f"{f.found} (fix: {f.fix})" for f in result.findings if f.level.is_problem),
                )
