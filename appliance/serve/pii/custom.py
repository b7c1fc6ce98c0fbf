"""An operator's own terms and patterns to mask (``PII_DENY_LIST``, ``PII_PATTERNS``): parsed and checked once,
when the settings are validated, and turned into Presidio recognizers when the analyzer is built.

- ``PII_DENY_LIST``: comma-separated ``TYPE=term`` entries (``PROJECT=Blue Falcon``); a term without ``TYPE=``
  is masked as ``CUSTOM``. Matched as whole words, any letter case.
- ``PII_PATTERNS``: a JSON object of ``TYPE`` to a regular expression or a list of them
  (``{"EMPLOYEE_ID": "\\\\bEMP-[0-9]{6}\\\\b"}``). Every match is masked as ``TYPE``.

A ``TYPE`` is an upper-case name that a placeholder can carry (``<EMPLOYEE_ID_1>``): letters, digits and
single underscores, starting with a letter. The parse functions raise ``ValueError`` with what was expected;
they need no Presidio (the settings call them).
"""

from __future__ import annotations

import json
import re
from typing import Any

TYPE_RE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*\Z")  # what placeholders.PLACEHOLDER_RE accepts as a type
DEFAULT_TYPE = "CUSTOM"
SCORE = 1.0  # the operator said so


def parse_deny_list(entries: list[str]) -> list[tuple[str, str]]:
    """``["PROJECT=Blue Falcon", "Acme"]`` → ``[("PROJECT", "Blue Falcon"), ("CUSTOM", "Acme")]``."""
    parsed = []
    for entry in entries:
        kind, sep, term = entry.partition("=")
        kind, term = (kind.strip(), term.strip()) if sep else (DEFAULT_TYPE, entry.strip())
        if not TYPE_RE.match(kind):
            raise ValueError(f"TYPE=term entries with an upper-case TYPE like PROJECT (not {kind!r})")
        if not term:
            raise ValueError(f"a term after {kind}=")
        parsed.append((kind, term))
    return parsed


def parse_patterns(text: str) -> list[tuple[str, str]]:
    """The JSON object of ``PII_PATTERNS`` as ``(TYPE, regex)`` pairs; '' → none."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f'a JSON object like {{"EMPLOYEE_ID": "EMP-[0-9]{{6}}"}} ({err.msg})') from None
    if not isinstance(data, dict):
        raise ValueError('a JSON object like {"EMPLOYEE_ID": "EMP-[0-9]{6}"}')
    pairs = []
    for kind, value in data.items():
        if not TYPE_RE.match(kind):
            raise ValueError(f"upper-case entity types like EMPLOYEE_ID as keys (not {kind!r})")
        regexes = value if isinstance(value, list) else [value]
        for regex in regexes:
            if not isinstance(regex, str) or not regex:
                raise ValueError(f"a regular expression (or a list of them) for {kind}")
            try:
                compiled = re.compile(regex)
            except re.error as err:
                raise ValueError(f"a valid regular expression for {kind} ({err})") from None
            if compiled.match(""):
                raise ValueError(f"a regular expression for {kind} that does not match the empty text")
            pairs.append((kind, regex))
    return pairs


def custom_types(deny_list: tuple[tuple[str, str], ...], patterns: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The operator's entity types, in first-seen order."""
    return tuple(dict.fromkeys(kind for kind, _ in (*deny_list, *patterns)))


def build_recognizers(
    deny_list: tuple[tuple[str, str], ...], patterns: tuple[tuple[str, str], ...], language: str
) -> list[Any]:
    """One Presidio ``PatternRecognizer`` per custom type (deny-list terms as whole words). Presidio matches
    its patterns with ``re.IGNORECASE | re.MULTILINE | re.DOTALL``: any letter case."""
    from presidio_analyzer import Pattern, PatternRecognizer

    recognizers = []
    for kind in custom_types(deny_list, patterns):
        made = [Pattern(f"{kind} {i}", regex, SCORE) for i, (k, regex) in enumerate(patterns) if k == kind]
        terms = [term for k, term in deny_list if k == kind]
        if terms:
            alternatives = "|".join(re.escape(term) for term in sorted(terms, key=len, reverse=True))
            made.append(Pattern(f"{kind} terms", rf"(?<!\w)(?:{alternatives})(?!\w)", SCORE))
        recognizers.append(
            PatternRecognizer(
                supported_entity=kind,
                patterns=made,
                supported_language=language,
                name=f"Custom{kind.title().replace('_', '')}Recognizer",
            )
        )
    return recognizers
