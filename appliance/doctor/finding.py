"""What a check returns: findings that say what was expected, what was found, and the fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    OK = "ok"
    INFO = "info"  # could not be told (offline, not applicable): not a problem
    WARNING = "warning"
    ERROR = "error"

    @property
    def is_problem(self) -> bool:
        return self in (Level.WARNING, Level.ERROR)


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    title: str
    expected: str = ""
    found: str = ""
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["level"] = self.level.value
        return data


def ok(check: str, title: str, found: str = "", expected: str = "") -> Finding:
    return Finding(check, Level.OK, title, expected=expected, found=found)
