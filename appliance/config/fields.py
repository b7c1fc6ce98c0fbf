"""Building blocks shared by the typed config models: documented fields and value parsers."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field
from pydantic_core import PydanticCustomError

# A model id is used in routes, deployment names and metric labels.
MODEL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\Z)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+\Z"
)
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")


def setting(default: Any, description: str, group: str, *, choices: tuple[str, ...] = ()) -> Any:
    """A documented setting. ``description`` and ``group`` feed ``.env.example`` and the guide."""
    extra: dict[str, Any] = {"group": group}
    if choices:
        extra["choices"] = list(choices)
    return Field(default, description=description, json_schema_extra=extra)


def expected(what: str) -> PydanticCustomError:
    """An error whose text is what was expected; the found value is added by the issue converter."""
    return PydanticCustomError("expected", "{expected}", {"expected": what})


def split_csv(value: Any) -> Any:
    """``a, b,,c`` → ``["a", "b", "c"]``; lists pass through; anything else is left to type checking."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def parse_bool_strict(value: Any) -> Any:
    """Booleans as people write them in .env files; everything else is rejected, not guessed."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "yes", "on", "1"}:
            return True
        if lowered in {"false", "no", "off", "0"}:
            return False
    raise expected("true or false")
