"""A tiny template engine for service configs: ``{{ name }}`` placeholders, nothing else.

nginx's own ``$variables`` pass through untouched. Rendering fails loudly when a placeholder has no value
or a value is left unused, so a service never sees an unrendered variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from appliance.errors import ApplianceError

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
_ANY_BRACES = re.compile(r"\{\{")


class TemplateError(ApplianceError):
    """A template and its values do not fit together (a bug in the appliance, never the user's input)."""


def render_text(text: str, values: Mapping[str, object], *, name: str) -> str:
    """Replace every ``{{ key }}``; raise when one has no value. Values are inserted verbatim."""
    missing = sorted({m.group(1) for m in PLACEHOLDER.finditer(text)} - set(values))
    if missing:
        raise TemplateError(f"{name}: no value for {', '.join(missing)}")
    rendered = PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)
    return rendered


def assert_fully_rendered(text: str, *, name: str) -> None:
    """No ``{{`` may be left (a typo such as ``{{ Name }}`` would otherwise slip through)."""
    match = _ANY_BRACES.search(text)
    if match:
        line = text.count("\n", 0, match.start()) + 1
        raise TemplateError(
            f"{name}:{line}: an unrendered placeholder is left: {text.splitlines()[line - 1].strip()!r}"
        )


def load(templates: Path, relative: str) -> str:
    path = templates / relative
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise TemplateError(f"{path}: cannot read the template ({err.strerror or err})") from err
