"""One configuration problem, how it is worded, and how secrets are kept out of the words.

Every problem is reported as ``FILE:KEY: expected …, found …`` with an optional hint. Values that come from
the secrets file are never shown: :func:`describe_found` is given ``secret=True`` for them, and a
:class:`Redactor` scrubs any secret value that might still slip into a message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

REDACTED = "<redacted>"
_MAX_SHOWN = 60


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class ConfigIssue:
    """A problem in one file at one key. ``line`` is 1-based when known."""

    file: str
    key: str
    message: str
    hint: str = ""
    severity: Severity = Severity.ERROR
    line: int | None = None

    @classmethod
    def mismatch(
        cls,
        file: str,
        key: str,
        expected: str,
        found: str,
        *,
        hint: str = "",
        severity: Severity = Severity.ERROR,
        line: int | None = None,
    ) -> ConfigIssue:
        """The common shape: what was expected and what was found (``found`` already described)."""
        return cls(file, key, f"expected {expected}, found {found}", hint, severity, line)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def location(self) -> str:
        return f"{self.file}:{self.key}"

    def render(self) -> str:
        """One or two lines of plain text: ``FILE:KEY: message (line N)`` and ``hint: …``."""
        where = f" (line {self.line})" if self.line and not self.key.startswith("line ") else ""
        text = f"{self.location()}: {self.message}{where}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data


def describe_found(value: object, *, secret: bool = False) -> str:
    """How a found value is shown in a message: quoted, shortened, or redacted."""
    if value is None:
        return "nothing"
    if isinstance(value, str) and value.strip() == "":
        return "an empty value"
    if secret:
        return REDACTED
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 1] + "…"
        return repr(shown)
    if isinstance(value, list):
        return f"a list ({len(value)} items)"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest known name to ``name``, if one is close enough to be a likely typo."""
    pool = list(candidates)
    upper = {c.upper(): c for c in pool}
    if name.upper() in upper:
        return upper[name.upper()]
    matches = difflib.get_close_matches(name.upper(), list(upper), n=1, cutoff=0.75)
    if matches:
        return upper[matches[0]]
    prefixed = [c for c in upper if len(name) >= 4 and c.startswith(name.upper())]
    return upper[prefixed[0]] if len(prefixed) == 1 else None


def unknown_key_issue(
    file: str, key: str, known: Iterable[str], *, what: str = "setting", line: int | None = None
) -> ConfigIssue:
    suggestion = did_you_mean(key, known)
    message = f"unknown {what}"
    if suggestion:
        message += f"; did you mean {suggestion}?"
    hint = "" if suggestion else f"remove it, or see docs/guides/configurator.md for the {what}s there are"
    return ConfigIssue(file, key, message, hint, Severity.ERROR, line)


class Redactor:
    """Replaces known secret values with ``<redacted>`` in any text meant for output."""

    _MIN_LEN = 4  # shorter values would scrub ordinary words

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= self._MIN_LEN}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def issue(self, issue: ConfigIssue) -> ConfigIssue:
        return ConfigIssue(issue.file, issue.key, self(issue.message), self(issue.hint), issue.severity, issue.line)
