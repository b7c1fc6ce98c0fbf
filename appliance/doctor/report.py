"""The doctor's output: a rich table for people, JSON for machines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from appliance.doctor.finding import Level
from appliance.doctor.runner import CheckResult

_STYLE = {Level.OK: "green", Level.INFO: "cyan", Level.WARNING: "yellow", Level.ERROR: "bold red"}
_MARK = {Level.OK: "✓", Level.INFO: "·", Level.WARNING: "!", Level.ERROR: "✗"}


def as_json(results: Sequence[CheckResult], code: int, seconds: float) -> dict[str, Any]:
    findings = [f.to_json() for r in results for f in r.findings]
    counts = {level.value: sum(1 for f in findings if f["level"] == level.value) for level in Level}
    return {
        "ok": code == 0,
        "exit_code": code,
        "seconds": round(seconds, 3),
        "counts": counts,
        "checks": [
            {
                "check": r.slug,
                "title": r.title,
                "seconds": round(r.seconds, 3),
                "findings": [f.to_json() for f in r.findings],
            }
            for r in results
        ],
    }


def print_table(results: Sequence[CheckResult], console: Console, seconds: float) -> None:
    table = Table(title="appliance doctor", title_justify="left", show_lines=False)
    for column in ("", "check", "expected", "found", "fix"):
        table.add_column(column, overflow="fold")
    for result in results:
        for finding in result.findings:
            style = _STYLE[finding.level]
            table.add_row(
                Text(_MARK[finding.level], style=style),
                Text(finding.title, style=style),
                Text(finding.expected),
                Text(finding.found),
                Text(finding.fix),
            )
    console.print(table)
    problems = [f for r in results for f in r.findings if f.level.is_problem]
    errors = sum(1 for f in problems if f.level is Level.ERROR)
    if problems:
        console.print(
            Text(
                f"{errors} error(s), {len(problems) - errors} warning(s) in {seconds:.2f} s — "
                "see docs/guides/admin-doctor.md for each check",
                style="bold red" if errors else "yellow",
            )
        )
    else:
        console.print(Text(f"all {len(results)} checks passed in {seconds:.2f} s", style="green"))
