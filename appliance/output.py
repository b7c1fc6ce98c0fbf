"""What the CLI prints: issues and tables for people (rich, on stderr), JSON for machines (stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from appliance.config.issues import ConfigIssue

_STYLE = {"error": "bold red", "warning": "yellow"}


def err_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def out_console() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def print_issues(issues: Iterable[ConfigIssue], console: Console | None = None) -> None:
    console = console or err_console()
    for issue in issues:
        label = Text(f"{issue.severity.value:<8}", style=_STYLE.get(issue.severity.value, ""))
        console.print(label + Text(issue.render()), markup=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    out_console().print(table)


def say(message: str, *, style: str = "") -> None:
    err_console().print(Text(message, style=style), markup=False)
