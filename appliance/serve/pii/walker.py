"""Walking a request body with a spec: for each value, is it masked, checked, kept, dropped or refused.

A spec is a function ``(walk, value, at, param)``: ``at`` is the value's place in the body (keys and indexes,
for writing masked text back), ``param`` the name that an error reports. Inside free-form JSON (schemas,
template arguments, tool call arguments) ``param`` stays at the field that holds it, so an error never
echoes a key the client made up.

- **mask**: free text the model reads; the PII service replaces personal data with placeholders.
- **check**: a string the engine sees that cannot be masked without breaking the request (a tool's name, a
  JSON-schema property name, an id); it is analysed too, and if personal data is found there the request is
  refused (:data:`UNMASKABLE_CODE`) instead of being forwarded.
- **keep**: structural values (numbers, booleans, enum words); a string in them that is not one of the
  expected words is checked like above.
- **drop**: fields the engine ignores (``user``, ``metadata``...): removed before forwarding.
- **refuse**: anything else (a field outside the allowlist, media, a request-supplied chat template):
  400 :data:`NOT_ALLOWED_CODE` naming the field.

Pure: no Presidio, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.serve.errors import ApiError

NOT_ALLOWED_CODE = "pii_field_not_allowed"
UNMASKABLE_CODE = "pii_unmaskable_field"

# A location of a text in the body: a path of keys / indexes from the body's root.
Path = tuple[str | int, ...]
Spec = Callable[["Walk", Any, Path, str], None]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_DIGITS_RE = re.compile(r"-?\d{1,9}\Z")
# Words that are structure, never personal data: not sent to the analyser when they appear in checked places.
STRUCTURAL_WORDS = frozenset(
    {
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "function",
        "auto",
        "none",
        "required",
        "text",
        "json_object",
        "json_schema",
        "string",
        "number",
        "integer",
        "boolean",
        "object",
        "array",
        "null",
    }
)


@dataclass(frozen=True)
class TextField:
    path: Path
    text: str
    inner: Path | None = None  # for a string inside JSON text: its place in the decoded JSON


@dataclass(frozen=True)
class Check:
    """A string the engine sees but that cannot be masked: the request is refused if it holds personal data."""

    param: str
    text: str

    def refusal(self) -> ApiError:
        return ApiError(
            400,
            f"Personal data was found in '{self.param}', where it cannot be masked (PII masking "
            "is on). Remove it from that field.",
            UNMASKABLE_CODE,
            self.param,
        )


@dataclass(frozen=True)
class Refusal:
    param: str
    message: str

    def error(self) -> ApiError:
        return ApiError(400, self.message, NOT_ALLOWED_CODE, self.param)


@dataclass
class Walk:
    """What one walk over a body found. ``masked`` in order of appearance; checks after them."""

    masked: list[TextField] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def mask(self, at: Path, text: str) -> None:
        if text:
            self.masked.append(TextField(at, text))

    def check(self, text: str, param: str) -> None:
        if text and text not in STRUCTURAL_WORDS and all(check.text != text for check in self.checks):
            self.checks.append(Check(param, text))

    def refuse(self, param: str, message: str) -> None:
        self.refusals.append(Refusal(param, message))


class _InJson(Walk):
    """A walk inside JSON text at ``outer``: masked strings are recorded with their place in the decoded JSON."""

    def __init__(self, parent: Walk, outer: Path) -> None:
        super().__init__(parent.masked, parent.checks, parent.refusals, parent.dropped)
        self._outer = outer

    def mask(self, at: Path, text: str) -> None:
        if text:
            self.masked.append(TextField(self._outer, text, at))


def shape_error(param: str, expected: str) -> ApiError:
    return ApiError(400, f"'{param}' must be {expected}.", "invalid_type", param)


def name_of(key: str) -> str:
    """A client-sent key as it may appear in an error: an identifier, else ``?`` (never echo free text)."""
    return key if _NAME_RE.match(key) else "?"


def empty(value: Any) -> bool:
    """No data at all: null, an empty string, list or object."""
    return value is None or (isinstance(value, str | list | dict) and not value)


# --- specs ---------------------------------------------------------------------------------------------------


def text(walk: Walk, value: Any, at: Path, param: str) -> None:
    """Free text (a string): masked."""
    if value is None:
        return
    if not isinstance(value, str):
        raise shape_error(param, "a string")
    walk.mask(at, value)


def texts(walk: Walk, value: Any, at: Path, param: str) -> None:
    """A string or a list of strings (``stop``, ``bad_words``, ``choice``): each masked."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            text(walk, item, (*at, index), f"{param}[{index}]")
    else:
        text(walk, value, at, param)


def keep(*words: str) -> Spec:
    """A structural value: numbers, booleans and ``words`` pass; any other string (or key) is checked."""
    allowed = frozenset(words)

    def spec(walk: Walk, value: Any, at: Path, param: str) -> None:
        if isinstance(value, str):
            if value not in allowed:
                walk.check(value, param)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk.check(str(key), param)
                spec(walk, item, (*at, key), param)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                spec(walk, item, (*at, index), param)

    return spec


KEEP = keep()


def trusted(walk: Walk, value: Any, at: Path, param: str) -> None:
    """A value the gate has already validated against configuration (``model``): left alone."""


def token_ids(walk: Walk, value: Any, at: Path, param: str) -> None:
    """``logit_bias``: token ids (digit strings) to numbers; anything else is checked."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not _DIGITS_RE.match(str(key)):
                walk.check(str(key), param)
            KEEP(walk, item, (*at, key), param)
    else:
        KEEP(walk, value, at, param)


def mask_all(walk: Walk, value: Any, at: Path, param: str) -> None:
    """Free-form JSON the model reads (documents, template arguments, schema examples): every string masked,
    every key checked."""
    if isinstance(value, str):
        walk.mask(at, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            walk.check(str(key), param)
            mask_all(walk, item, (*at, key), param)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            mask_all(walk, item, (*at, index), param)


def drop(walk: Walk, value: Any, at: Path, param: str) -> None:
    """A field the engine ignores: removed from the forwarded body (see :func:`walk_body`)."""
    walk.dropped.append(param)


def refused(why: str) -> Spec:
    """A field that cannot be masked safely: refused whenever it carries data."""

    def spec(walk: Walk, value: Any, at: Path, param: str) -> None:
        if not empty(value):
            walk.refuse(param, f"With PII masking on, '{param}' is not accepted: {why}")

    return spec


def list_of(item_spec: Spec) -> Spec:
    def spec(walk: Walk, value: Any, at: Path, param: str) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            raise shape_error(param, "a list")
        for index, item in enumerate(value):
            item_spec(walk, item, (*at, index), f"{param}[{index}]")

    return spec


def obj(fields: Mapping[str, Spec], *, what: str = "object") -> Spec:
    """An object with known keys; any other key that carries data is refused (deny by default)."""

    def spec(walk: Walk, value: Any, at: Path, param: str) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise shape_error(param, f"an {what}" if what[0] in "aeiou" else f"a {what}")
        walk_object(walk, value, fields, at, param)

    return spec


def walk_object(walk: Walk, value: dict[str, Any], fields: Mapping[str, Spec], at: Path, param: str) -> None:
    """Known keys in the order of ``fields`` (so placeholder numbers do not depend on the client's key order),
    then the unknown ones."""
    prefix = f"{param}." if param else ""
    for key, spec in fields.items():
        if key in value:
            spec(walk, value[key], (*at, key), prefix + key)
    for key, item in value.items():
        if key not in fields and not empty(item):
            name = prefix + name_of(str(key))
            walk.refuse(
                name,
                f"With PII masking on, '{name}' is not accepted: only fields that are masked or "
                "known to carry no free text may be sent (see the PII guide).",
            )


def json_text(walk: Walk, value: Any, at: Path, param: str, inner: Spec = mask_all) -> None:
    """A string holding JSON (tool call arguments): an object or array is walked with ``inner`` value by value,
    so the analyser sees ``O"Brien`` and not ``O\\"Brien`` and masking writes valid JSON back; other text is
    one masked text."""
    if value is None:
        return
    if not isinstance(value, str):
        raise shape_error(param, "a string")
    try:
        decoded = json.loads(value)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict | list):
        walk.mask(at, value)
        return
    inner(_InJson(walk, at), decoded, (), param)


# --- JSON schema ----------------------------------------------------------------------------------------------

# Annotations and literal values: text the model reads (or must write), masked.
_SCHEMA_TEXT = frozenset(
    {"description", "title", "$comment", "examples", "example", "default", "const", "enum", "pattern"}
)
# Keywords whose value maps names (property names, definitions) to schemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SCHEMA_KEYWORDS = frozenset(
    {
        "type",
        "items",
        "prefixItems",
        "additionalProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
        "required",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "minContains",
        "maxContains",
        "$ref",
        "$schema",
        "$id",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "dependentRequired",
        "nullable",
        "readOnly",
        "writeOnly",
        "deprecated",
        "contentEncoding",
        "contentMediaType",
        "strict",
    }
)


def schema(walk: Walk, value: Any, at: Path, param: str) -> None:
    """A JSON schema (tool parameters, response formats). ``description``/``title``/``enum``/``const``/
    ``default``/``examples``/``pattern`` strings are masked (the schema stays valid: only string values change,
    and the model then writes placeholders that the restorer turns back); property names, ``required`` and
    other keywords' strings are checked, never changed, so references and ``required`` stay consistent."""
    if isinstance(value, dict):
        for key, item in value.items():
            key = str(key)
            if key in _SCHEMA_TEXT:
                mask_all(walk, item, (*at, key), param)
            elif key in _SCHEMA_MAPS and isinstance(item, dict):
                for name, sub in item.items():
                    walk.check(str(name), param)
                    schema(walk, sub, (*at, key, name), param)
            else:
                if key not in _SCHEMA_KEYWORDS:
                    walk.check(key, param)
                schema(walk, item, (*at, key), param)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            schema(walk, item, (*at, index), param)
    elif isinstance(value, str):
        walk.check(value, param)


def schema_or_json_text(walk: Walk, value: Any, at: Path, param: str) -> None:
    """``structured_outputs.json``: a schema as an object, or as JSON text."""
    if isinstance(value, str):
        json_text(walk, value, at, param, inner=schema)
    else:
        schema(walk, value, at, param)


def one_of_types(by_type: Mapping[str, Spec], *, default: str | None, media: Iterable[str], why: str) -> Spec:
    """A list item chosen by its ``type`` (content parts): a known type's spec, a media type refused with
    ``why``, anything else refused."""
    media_types = frozenset(media)

    def spec(walk: Walk, value: Any, at: Path, param: str) -> None:
        if isinstance(value, str):
            walk.mask(at, value)
            return
        if not isinstance(value, dict):
            raise shape_error(param, "a string or an object")
        kind = value.get("type", default)
        if kind in media_types or media_types & value.keys():
            walk.refuse(param, f"With PII masking on, '{param}' is not accepted: {why}")
        elif isinstance(kind, str) and kind in by_type:
            by_type[kind](walk, value, at, param)
        else:
            walk.refuse(param, f"With PII masking on, '{param}' is not accepted: unknown content type.")

    return spec
