"""Per-request placeholders: the same value always gets the same ``<TYPE_N>``, two values never share one.

A :class:`PlaceholderMap` lives for one request only (it holds the user's personal data: never log it, never
persist it). Numbers count per entity type from 1 in order of first use; numbers that already appear in the
request's own text as placeholder-looking tokens (``<PERSON_1>`` typed by the user) are skipped, so the
restorer never confuses the user's literal text with a value of ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PLACEHOLDER_RE = re.compile(r"<([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)_(\d+)>")


def placeholder(entity_type: str, number: int) -> str:
    return f"<{entity_type}_{number}>"


class PlaceholderMap:
    """Value ↔ placeholder for one request. ``placeholder_for`` is the only way numbers are assigned."""

    def __init__(self, reserved_texts: Iterable[str] = ()) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}
        self._next: dict[str, int] = {}
        self._reserved: set[str] = set()
        for text in reserved_texts:
            self._reserved.update(match.group(0) for match in PLACEHOLDER_RE.finditer(text))

    def placeholder_for(self, entity_type: str, value: str) -> str:
        """The placeholder of ``value`` as ``entity_type``; the same value of the same type maps to the same one.

        A value found as two different types (rare: overlapping recognizers) gets one placeholder per type;
        both restore to the same value.
        """
        key = (entity_type, value)
        found = self._by_value.get(key)
        if found is not None:
            return found
        number = self._next.get(entity_type, 1)
        while placeholder(entity_type, number) in self._reserved:
            number += 1
        self._next[entity_type] = number + 1
        token = placeholder(entity_type, number)
        self._by_value[key] = token
        self._originals[token] = value
        return token

    @property
    def originals(self) -> dict[str, str]:
        """Placeholder → original value (a copy)."""
        return dict(self._originals)

    def counts(self) -> dict[str, int]:
        """How many distinct values per entity type (for metrics; no values)."""
        counts: dict[str, int] = {}
        for entity_type, _ in self._by_value:
            counts[entity_type] = counts.get(entity_type, 0) + 1
        return counts

    def __len__(self) -> int:
        return len(self._originals)

    def __repr__(self) -> str:  # never show the values
        return f"PlaceholderMap({len(self._originals)} placeholders)"
