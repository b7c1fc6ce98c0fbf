"""The project's small exception tree.

Deep code raises these; the CLI maps them to exit codes (see ``appliance.cli``). Anything else that reaches
the CLI is a bug and is reported as one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config.issues import ConfigIssue


class ApplianceError(Exception):
    """Base of every error the appliance raises on purpose."""

    exit_code = 1


class ConfigError(ApplianceError):
    """The configuration is invalid. Carries every issue found, not just the first."""

    exit_code = 2

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        count = len(self.issues)
        super().__init__(f"{count} configuration error{'s' if count != 1 else ''}")


class UsageError(ApplianceError):
    """The command line was used wrongly (a bad argument value, a missing file given explicitly)."""

    exit_code = 2


class NotAvailableError(ApplianceError):
    """A command exists but its behaviour has not been built yet. It says so instead of pretending."""

    exit_code = 1
