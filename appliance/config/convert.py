"""Turning pydantic's validation errors into the appliance's ``FILE:KEY: expected …, found …`` issues."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from appliance.config.issues import ConfigIssue, describe_found, unknown_key_issue

M = TypeVar("M", bound=BaseModel)
KeyFormatter = Callable[[tuple[Any, ...]], str]
LineLookup = Callable[[tuple[Any, ...]], int | None]

_EXPECTED_BY_TYPE = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "missing": "a value (this key is required)",
    "finite_number": "a finite number",
}


def _expected(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "expected":
        return str(ctx["expected"])
    if kind in ("enum", "literal_error"):
        return "one of " + str(ctx.get("expected", "the listed values"))
    bounds = {
        "greater_than_equal": ("ge", ">= {}"),
        "greater_than": ("gt", "greater than {}"),
        "less_than_equal": ("le", "at most {}"),
        "less_than": ("lt", "below {}"),
    }
    if kind in bounds:
        name, template = bounds[kind]
        noun = "an integer" if isinstance(ctx.get(name), int) else "a number"
        return f"{noun} " + template.format(ctx.get(name))
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return f"at least {count} item{'s' if count != 1 else ''}"
    if kind in _EXPECTED_BY_TYPE:
        return _EXPECTED_BY_TYPE[kind]
    return str(error["msg"]).lower()


def issues_from_validation_error(
    err: ValidationError,
    file: str,
    *,
    known_for: Callable[[tuple[Any, ...]], Iterable[str]],
    format_key: KeyFormatter,
    line_of: LineLookup,
    secret: bool = False,
    what: str = "setting",
) -> list[ConfigIssue]:
    """One issue per pydantic error, in the file's own key names, never showing secret values.

    ``known_for(loc)`` names the keys allowed beside an unknown key at ``loc``, for the did-you-mean.
    """
    issues: list[ConfigIssue] = []
    for error in err.errors(include_url=False):
        loc = tuple(error["loc"])
        key = format_key(loc)
        line = line_of(loc)
        if error["type"] == "extra_forbidden":
            unknown = unknown_key_issue(file, str(loc[-1]), known_for(loc), what=what, line=line)
            issues.append(ConfigIssue(file, key, unknown.message, unknown.hint, unknown.severity, line))
            continue
        found = "nothing" if error["type"] == "missing" else describe_found(error.get("input"), secret=secret)
        issues.append(ConfigIssue.mismatch(file, key, _expected(error), found, line=line))
    return issues


def validate_partial(
    model: type[M], data: dict[str, Any], to_issues: Callable[[ValidationError], list[ConfigIssue]], **kwargs: Any
) -> tuple[M | None, list[ConfigIssue]]:
    """Validate ``data``; on errors, report them all and retry without the offending top-level keys, so
    that checks across fields can still run over what is valid. None when even that fails."""
    try:
        return model.model_validate(data, **kwargs), []
    except ValidationError as err:
        issues = to_issues(err)
        bad = {e["loc"][0] for e in err.errors() if e["loc"]}
    try:
        return model.model_validate({k: v for k, v in data.items() if k not in bad}, **kwargs), issues
    except ValidationError:
        return None, issues
