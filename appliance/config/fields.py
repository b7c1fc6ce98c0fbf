"""Building blocks shared by the typed config models: documented fields and value parsers."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

# A model id is used in routes, deployment names and metric labels.
MODEL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
HOSTNAME_RE = re.compile(r"(?=.{1,253}\Z)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+\Z")
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


def _model_id(value: str) -> str:
    if not MODEL_ID_RE.match(value):
        raise expected("a model id of letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)")
    return value


def _node_name(value: str) -> str:
    from appliance.cluster.placement import NODE_NAME_RE, NODE_NAME_RULE

    if not NODE_NAME_RE.fullmatch(value):
        raise expected(f"a Ray node name: {NODE_NAME_RULE}")
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise expected("a non-empty value")
    return value


# Constrained types shared by the settings and the models file (errors worded by appliance.config.convert).
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
UnitInterval = Annotated[float, Field(ge=0, le=1)]
Dtype = Literal["auto", "bfloat16", "float16", "float32"]
ModelId = Annotated[str, AfterValidator(_model_id)]
NonEmptyStr = Annotated[str, AfterValidator(_non_empty)]
NodeName = Annotated[str, AfterValidator(_node_name)]
