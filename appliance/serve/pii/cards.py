"""Card numbers Presidio's pattern misses: 2-series Mastercard (2221-2720), 19-digit cards, American Express
written 4-6-5, and any of them with single spaces or dashes between digit groups.

A candidate is 12 to 19 digits with at most one space or dash between digits; it counts when it passes the
Luhn check and starts with an issuer prefix (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay,
Maestro). Not preceded by ``+`` (an international phone number) nor part of a longer run of digits.
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult

from appliance.serve.pii.tokens import NO_EXPLANATION

ENTITY = "CREDIT_CARD"
SCORE = 0.9
_CANDIDATE = re.compile(r"(?<![\d+\-./])\d(?:[ -]?\d){11,18}(?![\d])(?![-/.]\d)")
_PREFIX = re.compile(r"^(?:4|5[0-8]|2(?:2[2-9][1-9]|2[3-9]|[3-6]|7[01]|720)|3[47]|3(?:0[0-5]|[689])|6|35|1800|2131)")


def luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class CardRecognizer(EntityRecognizer):
    """Luhn-valid card numbers of 12-19 digits with an issuer prefix (see the module docstring)."""

    name: str  # set by EntityRecognizer.__init__ (presidio leaves it untyped)

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=[ENTITY], supported_language=supported_language, name="CardRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if ENTITY not in entities:
            return []
        found = []
        for match in _CANDIDATE.finditer(text):
            digits = re.sub(r"[ -]", "", match.group())
            if 12 <= len(digits) <= 19 and _PREFIX.match(digits) and luhn(digits):
                found.append(
                    RecognizerResult(
                        ENTITY,
                        match.start(),
                        match.end(),
                        SCORE,
                        analysis_explanation=NO_EXPLANATION,
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                )
        return found
