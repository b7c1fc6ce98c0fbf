"""One placeholder per value: overlapping results joined, the pieces of one address joined.

Recognizers overlap: spaCy calls ``Scura 127`` a person inside the street ``Via Pasquale Scura 127``, the phone
recognizer and the card recognizer both see ``4095-2609-9393-4932``, an address comes as street, city and
postcode pieces. :func:`resolve` (pure) turns the analyzer's results into non-overlapping spans:

1. results that overlap form a group; the group becomes one result over the union of their spans (nothing of
   a partly covered value is left in the clear), typed by its longest member, with three tie-breaks: a checked
   format (e-mail, card, IBAN, phone...) always wins over a name or a place, a street found by its shape
   wins over a name (spaCy's small model calls many streets persons), and among equally long members
   the higher score (a cued name over a gazetteer place), then the higher type priority (:data:`PRIORITY`);
2. LOCATION results separated only by spaces, commas, semicolons or line breaks (an escaped ``\\n`` too)
   become one: a street, its city and postcode are one placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# Higher wins inside an overlapping group: checked formats before names and places.
PRIORITY = {"EMAIL_ADDRESS": 9, "URL": 8, "IBAN_CODE": 8, "CREDIT_CARD": 7, "US_SSN": 7, "IP_ADDRESS": 7,
            "PHONE_NUMBER": 6, "LOCATION": 4, "PERSON": 3}  # fmt: skip
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


def resolve(results: Sequence[Any], text: str) -> list[Any]:
    """Non-overlapping results (see the module docstring); the result objects are reused and changed."""
    for result in results:  # spaCy's spans may take the white space after a name ("Svratka\n ")
        while result.end > result.start + 1 and text[result.end - 1].isspace():
            result.end -= 1
        while result.start < result.end - 1 and text[result.start].isspace():
            result.start += 1
    ordered = sorted(results, key=lambda r: (r.start, -r.end))
    groups: list[list[Any]] = []
    end = -1
    for result in ordered:
        if groups and result.start < end:
            groups[-1].append(result)
            end = max(end, result.end)
        else:
            groups.append([result])
            end = result.end
    merged = []
    for group in groups:
        best = max(group, key=_rank)
        best.start, best.end = min(r.start for r in group), max(r.end for r in group)
        best.score = max(r.score for r in group if r.entity_type == best.entity_type)
        merged.append(best)
    joined: list[Any] = []
    for result in merged:
        last = joined[-1] if joined else None
        if (last is not None and last.entity_type == result.entity_type == "LOCATION"
                and result.start - last.end <= MAX_GAP and _ADDRESS_GAP.match(text[last.end:result.start])):  # fmt: skip
            last.end = result.end
            last.score = max(last.score, result.score)
            continue
        joined.append(result)
    return joined
