"""A doctor check: a slug, a timeout, when it applies, and ``run`` that reads and returns findings."""

from __future__ import annotations

from typing import ClassVar

from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level, ok


class Check:
    slug: ClassVar[str]
    title: ClassVar[str]
    timeout_s: ClassVar[float] = 1.5
    needs_config: ClassVar[bool] = True
    needs_stack: ClassVar[bool] = False  # only with the stack up (skipped by --preflight)
    in_stack: ClassVar[bool] = False  # the supervisor also runs it from inside the stack (one 1/0 gauge each)

    def applies(self, ctx: DoctorContext) -> bool:
        return True

    def run(self, ctx: DoctorContext) -> list[Finding]:
        raise NotImplementedError

    # --- helpers for subclasses ---
    def ok(self, found: str = "", expected: str = "") -> Finding:
        return ok(self.slug, self.title, found=found, expected=expected)

    def problem(self, level: Level, expected: str, found: str, fix: str, title: str = "") -> Finding:
        return Finding(self.slug, level, title or self.title, expected=expected, found=found, fix=fix)
