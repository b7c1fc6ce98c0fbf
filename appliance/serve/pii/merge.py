"""One placeholder per value: overlapping results joined, the pieces of one address joined.

Recognizers overlap: spaCy calls ``Scura 127`` a person inside the street ``Via Pasquale Scura 127``, the phone
recognizer and the card recognizer both see ``4095-2609-9393-4932``, an address comes as street, city and
postcode pieces. :func:`resolve` (pure) turns the analyzer's results into non-overlapping spans:

1. results are taken best first, and each keeps only what the results taken before it do not cover (so
   nothing of a partly covered value is left in the clear, and ``Verena Schuur Apt`` from spaCy beside the
   unit ``Apt. 961`` keeps ``Verena Schuur`` as a name). Best: a checked format (e-mail, card, IBAN,
   phone...) before a name or a place, a street found by its shape before a name (spaCy's small model calls
   many streets persons), then the longer, then the higher score (a cued name over a gazetteer place), then
   the higher type priority (:data:`PRIORITY`). A leftover is trimmed to its first and last letter or digit;
   one with neither is dropped (it holds no value);
2. LOCATION results separated only by spaces, commas, semicolons or line breaks (an escaped ``\\n`` too)
   become one: a street, its city and postcode are one placeholder.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

# Higher wins inside an overlapping group: checked formats before names and places.
PRIORITY = {
    "EMAIL_ADDRESS": 9,
    "URL": 8,
    "IBAN_CODE": 8,
    "CREDIT_CARD": 7,
    "US_SSN": 7,
    "IP_ADDRESS": 7,
    "PHONE_NUMBER": 6,
    "LOCATION": 4,
    "PERSON": 3,
}
STREET_KEY = "appliance_street"  # places.STREET_KEY (not imported: this module needs no presidio)
CHECKED = 6  # priorities from here up: formats with a checksum or a strict shape
_ADDRESS_GAP = re.compile(r"^(?:[\s,;]|\\n)*$")
MAX_GAP = 8


def _rank(result: Any) -> tuple[bool, bool, int, float, int]:
    priority = PRIORITY.get(result.entity_type, 5)
    return priority >= CHECKED, _street(result), result.end - result.start, result.score, priority


def _street(result: Any) -> bool:
    """A street line found by its shape (places.py): it outranks an overlapping name (spaCy's small model
    calls ``Via Pasquale Scura 127`` a person)."""
    metadata = getattr(result, "recognition_metadata", None) or {}
    return result.entity_type == "LOCATION" and bool(metadata.get(STREET_KEY))


def _uncovered(start: int, end: int, kept: list[Any]) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` that no result in ``kept`` covers."""
    parts = [(start, end)]
    for other in kept:
        if other.end <= start or other.start >= end:
            continue
        parts = [
            piece
            for s, e in parts
            for piece in ((s, min(e, other.start)), (max(s, other.end), e))
            if piece[0] < piece[1]
        ]
    return parts


def resolve(results: Sequence[Any], text: str) -> list[Any]:
    """Non-overlapping results (see the module docstring); the result objects are reused and changed."""
    for result in results:  # spaCy's spans may take the white space after a name ("Svratka\n ")
        while result.end > result.start + 1 and text[result.end - 1].isspace():
            result.end -= 1
        while result.start < result.end - 1 and text[result.start].isspace():
            result.start += 1
    kept: list[Any] = []  # non-overlapping, the best-ranked first
    for result in sorted(results, key=_rank, reverse=True):
        pieces = _uncovered(result.start, result.end, kept)
        for number, (start, end) in enumerate(pieces):
            while start < end and not text[start].isalnum():
                start += 1
            while end > start and not text[end - 1].isalnum():
                end -= 1
            if start >= end:
                continue
            piece = result if number == 0 else copy.copy(result)
            piece.start, piece.end = start, end
            kept.append(piece)
    merged = sorted(kept, key=lambda r: r.start)
    joined: list[Any] = []
    for result in merged:
        last = joined[-1] if joined else None
        if (
            last is not None
            and last.entity_type == result.entity_type == "LOCATION"
            and result.start - last.end <= MAX_GAP
            and _ADDRESS_GAP.match(text[last.end : result.start])
        ):
            last.end = result.end
            last.score = max(last.score, result.score)
            continue
        joined.append(result)
    return joined
