"""Phone numbers found faster: Presidio's PhoneRecognizer, run only on the windows of a text around digits.

Presidio's recognizer runs libphonenumber's matcher over the whole text once per region (8 by default),
which costs more than every other pattern recognizer together. A phone number is a run of digits and
separators (plus an optional extension), and the matcher decides from the characters next to it, so running
it on each digit run with a margin of context on both sides finds the same numbers at the same offsets
(tested against the stock recognizer on the labelled sample). Presidio's scores and context handling apply
unchanged.

A region's matcher is also skipped on a window with too few digits to hold one of that region's numbers: a
window with only a year and a house number in it never reaches the US matcher. The least is taken from
libphonenumber's own metadata: the shortest number length of any region sharing the region's country code (the
US matcher also finds Canada's 7-digit "310-1234": country code 1), or, because a number in international form
("+49 30 1234", "00 49 ...") is matched under every region, the shortest country code plus number of any
country (plus two digits for an international call prefix when no "+" is written). The matcher itself
(:class:`RegionMatcher`) does not parse a candidate with too few digits either.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from appliance.serve.pii.tokens import NO_EXPLANATION

_DIGIT_RUN = re.compile(r"[0-9０-９][0-9０-９\s()+\-./\u2010-\u2015\u00a0]*")
MARGIN = 24
PLUS_SIGNS = frozenset("+\uff0b")
SHORTEST_IDD = 2  # international call prefixes ("00", "011", "810", ...) have at least two digits


def _lengths(metadata: Any, possible: bool) -> list[int]:
    desc = metadata.general_desc
    found = list(desc.possible_length or ()) + (list(desc.possible_length_local_only or ()) if possible else [])
    return [length for length in found if length > 0]


@cache
def shortest_international(possible: bool) -> int:
    """Fewest digits of any number written with its country code (country code + shortest national number)."""
    best = 99
    for region in phonenumbers.SUPPORTED_REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is not None and metadata.country_code and _lengths(metadata, possible):
            best = min(best, len(str(metadata.country_code)) + min(_lengths(metadata, possible)))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        metadata = PhoneMetadata.metadata_for_nongeo_region(code)
        if metadata is not None and _lengths(metadata, possible):
            best = min(best, len(str(code)) + min(_lengths(metadata, possible)))
    return best


@cache
def shortest_national(region: str, possible: bool) -> int:
    """Fewest digits of a national number that ``region``'s matcher can find without a country code written:
    the shortest of every region sharing its country code (0: unknown, never skip)."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or not metadata.country_code:
        return 0
    lengths = []
    for member in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(metadata.country_code, (region,)):
        member_metadata = PhoneMetadata.metadata_for_region(member)
        if member_metadata is None or not _lengths(member_metadata, possible):
            return 0
        lengths.append(min(_lengths(member_metadata, possible)))
    return min(lengths, default=0)


@cache
def fewest_digits(region: str, leniency: int, plus: bool) -> int:
    """Fewest digits a window needs for ``region``'s matcher to find anything there (0: always run it)."""
    possible = leniency == phonenumbers.Leniency.POSSIBLE
    national = shortest_national(region, possible)
    if not national:
        return 0
    international = shortest_international(possible) + (0 if plus else SHORTEST_IDD)
    return min(national, international)


def windows(text: str, margin: int = MARGIN) -> list[tuple[int, int]]:
    """Merged (start, end) spans of ``text`` around every digit run, ``margin`` characters each side."""
    spans: list[tuple[int, int]] = []
    for match in _DIGIT_RUN.finditer(text):
        start, end = max(0, match.start() - margin), min(len(text), match.end() + margin)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


class RegionMatcher(phonenumbers.PhoneNumberMatcher):
    """libphonenumber's matcher that does not parse a candidate with too few digits for its region (the same
    least as for a window, now per candidate: a window with a long number also holds years and house
    numbers)."""

    def __init__(self, text: str, region: str, leniency: int, plus: bool) -> None:
        super().__init__(text, region, leniency=leniency)
        self._fewest = fewest_digits(region, leniency, False)
        self._fewest_plus = fewest_digits(region, leniency, True) if plus else self._fewest

    def _extract_match(self, candidate: str, offset: int) -> Any:
        plus = self._fewest_plus != self._fewest and not PLUS_SIGNS.isdisjoint(candidate)
        if sum(char.isdigit() for char in candidate) < (self._fewest_plus if plus else self._fewest):
            return None  # neither the candidate nor any part of it can be one of the region's numbers
        return super()._extract_match(candidate, offset)


class WindowedPhoneRecognizer(PhoneRecognizer):
    """Same results as :class:`PhoneRecognizer`, reading only the text around digits."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for start, end in windows(text):
            window = text[start:end]
            digits = sum(char.isdigit() for char in window)
            plus = not PLUS_SIGNS.isdisjoint(window)
            for region in self.supported_regions:
                if digits < fewest_digits(region, self.leniency, plus):
                    continue
                for match in RegionMatcher(window, region, self.leniency, plus):  # type: ignore[arg-type]  # set in __init__
                    results.append(self._result(match, window, region, start))
        return EntityRecognizer.remove_duplicates(results)

    def _result(self, match: Any, window: str, region: str, offset: int) -> RecognizerResult:
        """What :meth:`PhoneRecognizer.analyze` records for ``match`` (the region named after the number's
        own country when it parses), moved to the text's offsets."""
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(window[match.start : match.end]))  # type: ignore[assignment]  # None as in presidio's own analyze
        except phonenumbers.NumberParseException:
            pass
        result: RecognizerResult = self._get_recognizer_result(match, window, region, None)  # type: ignore[no-untyped-call]
        result.start += offset
        result.end += offset
        return result

    @classmethod
    def like(cls, stock: PhoneRecognizer, score: float | None) -> WindowedPhoneRecognizer:
        made = cls(
            context=stock.context,
            supported_language=stock.supported_language,
            supported_regions=stock.supported_regions,
            leniency=stock.leniency,
        )
        made.SCORE = score if score is not None else stock.SCORE
        return made


# A phone number written right after a word that says so ("call me on 76 177 296", "Phone:\n439 4166"): any
# region's local format, so no region's metadata can vouch for it; the cue does.
_CUED = re.compile(
    r"(?i:\b(?:phone|tel|telephone|mobile|mob|cell|cellphone|fax|whatsapp|call\s+me\s+(?:on|at)|reach\s+me\s+(?:on|at)"
    r"|text\s+me\s+(?:on|at)|ring\s+me\s+(?:on|at)|answering\s+at|messages\s+to|registered|number(?:\s+is)?)"
    r"\b\.?)(?:[ \t:#]|\\n|\n|\(|\)){1,6}(\+?[0-9][0-9 ()./\-]{4,22}[0-9])(?![0-9])"
)
CUED_SCORE = 0.6


class CuedPhoneRecognizer(EntityRecognizer):
    """6 to 15 digits (spaces, dots, dashes, brackets between them) right after a phone word (``Phone:``,
    ``call me on``, ``mobile``): local numbers of any region, which libphonenumber cannot place."""

    name: str  # set by EntityRecognizer.__init__ (presidio leaves it untyped)

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["PHONE_NUMBER"], supported_language=supported_language, name="CuedPhoneRecognizer"
        )

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        found = []
        for match in _CUED.finditer(text):
            digits = sum(char.isdigit() for char in match.group(1))
            if 6 <= digits <= 15:
                found.append(
                    RecognizerResult(
                        "PHONE_NUMBER",
                        match.start(1),
                        match.end(1),
                        CUED_SCORE,
                        analysis_explanation=NO_EXPLANATION,
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                )
        return found
