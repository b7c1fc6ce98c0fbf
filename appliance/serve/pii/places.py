"""LOCATION recall: street addresses, PO boxes, units, postcodes next to a place, and gazetteer places.

One recognizer, three passes over a text (all regular expressions compiled once, none per place):

1. **Streets** in the shapes of the countries the appliance is used in: English (``221B Baker Street``,
   ``12 Park Ave, Apt 4``, ``Flat 3, 27 Mill Lane``), German/Dutch/Nordic compounds with the number after
   (``Lindenstraße 14``, ``Keizersgracht 123``), Romance street types first (``12 rue des Lilas``,
   ``Calle de Alcalá 45``, ``Via Roma 3``, ``Rua Augusta 10``), PO boxes (``P.O. Box 12``, ``Postfach``),
   US military addresses (``PSC 1234, Box 5678``, ``APO AE 09012``) and units (``Apt. 5``, ``Suite 300``).
2. **Places** from the gazetteers (:mod:`appliance.serve.pii.gazetteers`): capitalised runs of one to four
   tokens looked up, accent-folded, among countries, US states and cities; a place that is also a common
   English word is taken only right after a preposition of place (``in``, ``from``...) or next to another
   location.
3. **Postcodes and region codes next to a location**: a UK or Canadian postcode anywhere (their shape is
   distinctive), and a 4-6 digit number, a Dutch ``1234 AB`` or a two-letter region code (``TX``, ``NSW``)
   only when it touches a street, a place or spaCy's own GPE/LOC entity (separated by spaces, commas or a
   line break) — ``10969 Berlin``, ``Austin, TX 78701``, ``Brazil 35172``.

The results are pieces; :mod:`appliance.serve.pii.merge` joins the pieces of one address into one span.
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult

from appliance.serve.pii.gazetteers import REGION_CODES, common_words, fold, person_names, place_names, village_names
from appliance.serve.pii.tokens import NO_EXPLANATION, TokenView, token_view

ENTITY = "LOCATION"
STREET_SCORE = 0.7
PLACE_SCORE = 0.6
STREET_KEY = "appliance_street"  # in a result's recognition_metadata: found by an address's shape (merge.py)
SURE_PLACE_SCORE = 0.86  # above spaCy's 0.85
POSTCODE_SCORE = STREET_SCORE  # found by its shape too: flagged as part of an address (merge.py)

_CAP = r"[A-ZÀ-ÖØ-ÞĀ-ſ][\w'’.-]*"  # a capitalised word (Latin letters, accents)
_EN_TYPES = (
    r"street|st|avenue|ave|av|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|terrace|terr|way|parkway|"
    r"pkwy|circle|cir|close|crescent|cres|square|sq|highway|hwy|row|mews|gardens|grove|heights|walk|green|greens|"
    r"view|parade|pde|trail|alley|plaza|esplanade|quay|wharf|rise|radial|viaduct|expressway|freeway|turnpike|"
    r"motorway|loop|pike|point|ridge|run|crossing|hollow|estate|park"
)
_UNIT = r"(?:apt|apartment|suite|ste|unit|flat|fl|floor|room|rm|bldg|building|#)"
_UNIT_AFTER = rf"(?:,?\s*(?i:{_UNIT})\.?\s*#?\s?[0-9]{{1,5}}[A-Za-z]?\b)?"
_ENGLISH = re.compile(  # matched where a number starts (see _NUMBER_START)
    rf"[0-9]{{1,5}}[A-Za-z]?(?:[-–][0-9]{{1,5}})?,?\s+(?:(?:{_CAP}|[0-9]{{1,3}}(?:st|nd|rd|th))\s+){{0,4}}"
    rf"(?i:{_EN_TYPES})\b\.?(?:\s+(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\b\.?)?" + _UNIT_AFTER
)
# German/Dutch/Nordic street words end a word and a house number follows: found from the numbers (few per
# text), the word before each looked at, then grown over up to three capitalised words ("Am Markt 3").
_COMPOUND_ENDINGS = tuple(
    "straße strasse str. gasse weg platz allee ring damm ufer chaussee steig pfad markt vej vei veien gata gatan "
    "gade vägen tie katu kuja laan straat gracht plein dijk kade steeg singel stieg zeile".split()
)
_HOUSE_NUMBER = re.compile(r"[ \t]+[0-9]{1,4}(?:\s?[a-zA-Z]\b)?(?:\s?[-/]\s?[0-9]{1,4}\b)?(?![0-9])" + _UNIT_AFTER)
_WORD_BEFORE = re.compile(r"(?:[A-ZÀ-Þ][\w'’]*[ -])$")
_ROMANCE_TYPES = (
    r"rue|avenue|av\.|avda\.?|bd|boulevard|chemin|place|allée|impasse|quai|route|cours|calle|c/|avenida|plaza|"
    r"paseo|carrer|camino|carretera|via|viale|piazza|piazzale|corso|vicolo|largo|rua|r\.|travessa|praça|estrada|"
    r"alameda|ulica|ul\.|utca|ruta|bairro|strada|rruga|odos"
)
_PARTICLE = r"(?:de|del|de la|des|du|da|do|dos|das|di|della|delle|dei|degli|la|le|les|el|los|las|d'|l')"
_ROMANCE = re.compile(  # matched where a street-type token starts
    rf"(?:(?i:{_ROMANCE_TYPES}))\s+(?:(?i:{_PARTICLE})\s*)?{_CAP}(?:[ -](?:(?i:{_PARTICLE})\s*)?{_CAP}){{0,4}}"
    r"(?:,?\s*(?:n[º°o]\.?\s*)?[0-9]{1,5}[a-zA-Z]?\b(?:,?\s*[0-9]{1,2}\s?[º°ª]\s?\w*\.?)?)?" + _UNIT_AFTER
)
_POBOX = re.compile(
    r"\b(?:P\.?\s?O\.?\s?Box|Post\s+Office\s+Box|PO\s+Box|Postfach|Apartado(?:\s+de\s+Correos)?|Caixa\s+Postal|"
    r"Casilla)\s*#?\s?[0-9]{1,6}\b",
    re.IGNORECASE,
)
_MILITARY = re.compile(
    r"\b(?:(?:PSC|CMR|Unit)\s+[0-9]{3,5},?\s+Box\s+[0-9]{2,5}|(?:USNS|USNV|USS|USCGC)\s+" + _CAP + r")"
    r"(?:\s*(?:\\n|\n|,)?\s*(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+[0-9]{5})?"
    r"|\b(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+[0-9]{5}\b"
)
_UNIT_ALONE = re.compile(r"\b(?i:apt|apartment|suite|ste|unit|flat)\.?\s*#?\s?[0-9]{1,5}[A-Za-z]?\b")
# After an address cue, a street without a type word: "lives at 788 Fitjabraut 87", "address: Helmstok 174".
_CUED_STREET = re.compile(  # matched where a cue token starts
    r"(?i:address(?:\s+is)?\s*:?|lives?\s+at|living\s+at|located\s+at|resides?\s+at|ship(?:ped)?\s+to|"
    r"deliver(?:ed)?\s+to|send\s+(?:it\s+)?to|moved\s+to|stay(?:ing)?\s+at)\s+"
    rf"((?:[0-9]{{1,6}}\s+)?{_CAP}(?:\s+{_CAP}){{0,3}}\s+[0-9]{{1,5}}[a-zA-Z]?\b)"
)
_NUMBER_START = re.compile(r"\b[0-9]{1,5}[A-Za-z]?\b")
# Before a street: another number ("083 254 Damvergi Street", "12, rue ..."), or a unit ("Flat 3, 27 Mill Lane").
_NUMBER_BEFORE = re.compile(r"\b[0-9]{1,6}[A-Za-z]?(?: ?bis| ?ter)?,?[ \t]+$")
_UNIT_BEFORE = re.compile(rf"\b(?i:{_UNIT})\.? *#? ?[0-9]{{1,5}}[A-Za-z]? *[,/] *$")
# A line that is only a name and a number ("Helmstok 174", "64535 Svépomoc 219"): a street when it touches
# another piece of an address (the next line is a unit, a town or a postcode).
_STREET_LINE = re.compile(
    rf"(?m)(?<![^\s])(?:[0-9]{{1,6}} )?{_CAP}(?: {_CAP}){{0,3}} [0-9]{{1,5}}[a-zA-Z]?(?=[ \t]*(?:,|$))"
)
_CAPITALISED_RUN = re.compile(rf"{_CAP}(?: {_CAP}){{0,2}}")
# Which pattern to try at a token, by the token's lower case (dots and slashes stripped): the patterns are
# matched only there, not searched through the whole text (a tenth of the time).
_TRIGGERS: dict[str, tuple[re.Pattern[str], ...]] = {}
for _words, _pattern in (
    (
        "rue avenue av avda bd boulevard chemin place allée impasse quai route cours calle c avenida plaza paseo carrer "
        "camino carretera via viale piazza piazzale corso vicolo largo rua r travessa praça estrada alameda ulica ul "
        "utca ruta bairro strada rruga odos",
        _ROMANCE,
    ),
    ("p.o p po post postfach apartado caixa casilla", _POBOX),
    ("psc cmr unit usns usnv uss uscgc apo fpo dpo", _MILITARY),
    ("apt apartment suite ste unit flat", _UNIT_ALONE),
    (
        "address lives live living located resides reside ship shipped deliver delivered send moved stay staying",
        _CUED_STREET,
    ),
):
    for _word in _words.split():
        _TRIGGERS[_word] = _TRIGGERS.get(_word, ()) + (_pattern,)
_UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}[0-9][A-Z0-9]?\s?[0-9][ABD-HJLNP-UW-Z]{2}\b")
_CA_POSTCODE = re.compile(r"\b[ABCEGHJ-NPRSTVXY][0-9][ABCEGHJ-NPRSTV-Z]\s?[0-9][ABCEGHJ-NPRSTV-Z][0-9]\b")
# Pieces that count only next to a location: postcodes of 4-6 digits (US ZIP+4), Dutch 1234 AB, region codes.
_NEIGHBOUR = re.compile(r"\b(?:[0-9]{4,6}(?:-[0-9]{4})?|[0-9]{4}\s?[A-Z]{2}|[0-9]{2}-[0-9]{3}|[A-Z]{2,3})\b")
_POSTCODE_END = re.compile(r"\b(?:[0-9]{4,6}|[0-9]{4} ?[A-Z]{2})$")  # "10969 Berlin", "1015 CJ Amsterdam"
_LEAD = re.compile(r"(?:[\s,;]|\\n)*")
_GAP = re.compile(r"^(?:[\s,;]|\\n)*$")  # what may separate two pieces of one address
_GAP_RUN = re.compile(r"(?:[\s,;]|\\n)*")  # the same, for fullmatch(text, start, end)
# Months and weekdays that are also towns (March, Cambridgeshire; Mayo): "in March" is a date.
_CALENDAR = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)
_PLACE_PREPOSITIONS = frozenset(
    {
        "in",
        "from",
        "to",
        "at",
        "near",
        "of",
        "via",
        "into",
        "around",
        "visit",
        "visiting",
        "moved",
        "live",
        "lives",
        "living",
        "based",
        "born",
    }
)


def _streets(text: str, view: TokenView | None) -> list[tuple[int, int, float]]:
    """Street lines, PO boxes, military addresses and units; each pattern tried only where its trigger
    token is (every position when there are no tokens)."""
    spans: list[tuple[int, int, float]] = []
    for number in _NUMBER_START.finditer(text):
        match = _ENGLISH.match(text, number.start())
        if match:
            spans.append((match.start(), match.end(), STREET_SCORE))
    if view is None:
        for pattern in (_ROMANCE, _POBOX, _MILITARY, _UNIT_ALONE, _CUED_STREET):
            spans.extend(_span_of(m, pattern) for m in pattern.finditer(text))
    else:
        for start, lower in zip(view.starts, view.lowers):
            for pattern in _TRIGGERS.get(lower.strip("./"), ()):
                match = pattern.match(text, start)
                if match:
                    spans.append(_span_of(match, pattern))
    spans.extend(_compounds(text))
    for start, _, _ in list(spans):
        before = _NUMBER_BEFORE.search(text, max(0, start - 10), start) or _UNIT_BEFORE.search(
            text, max(0, start - 16), start
        )
        if before:
            spans.append((before.start(), start, STREET_SCORE))
    return spans


def _span_of(match: re.Match[str], pattern: re.Pattern[str]) -> tuple[int, int, float]:
    group = 1 if pattern is _CUED_STREET else 0
    return match.start(group), match.end(group), STREET_SCORE


def _compounds(text: str) -> list[tuple[int, int, float]]:
    """``Lindenstraße 14``, ``Am Markt 3``, ``Langenhorner Chaussee 76``: see :data:`_COMPOUND_ENDINGS`."""
    found = []
    for match in _HOUSE_NUMBER.finditer(text):
        end = match.start()
        start = end
        while start and (text[start - 1].isalnum() or text[start - 1] in "'’-."):
            start -= 1
        if start == end or not text[start:end].lower().endswith(_COMPOUND_ENDINGS):
            continue
        for _ in range(3):
            before = _WORD_BEFORE.search(text, max(0, start - 40), start)
            if not before:
                break
            start = before.start()
        found.append((start, match.end(), STREET_SCORE))
    return found


class LocationRecognizer(EntityRecognizer):
    """Street addresses, PO boxes, units, gazetteer places and postcodes next to them (module docstring)."""

    name: str  # set by EntityRecognizer.__init__ (presidio leaves it untyped)

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=[ENTITY], supported_language=supported_language, name="LocationRecognizer")
        self.places = place_names()
        self.villages = village_names()
        # first words of the places of several words ("sidi" of "Sidi El Heni"): only there longer runs are tried
        self.prefixes = frozenset(
            re.split(r"[ -]", name, maxsplit=1)[0]
            for names in (self.places, self.villages)
            for name in names
            if re.search(r"[ -]", name)
        )
        self.common = common_words()
        self.first, self.last = person_names()

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if ENTITY not in entities:
            return []
        view = token_view(nlp_artifacts, text)
        spans = _streets(text, view)
        for pattern in (_UK_POSTCODE, _CA_POSTCODE):
            spans.extend((m.start(), m.end(), POSTCODE_SCORE) for m in pattern.finditer(text))
        doc = getattr(nlp_artifacts, "tokens", None)
        anchors = [(s, e) for s, e, _ in spans]
        if doc is not None and view is not None:
            spans.extend(self._places(text, view, list(anchors)))  # streets and postcodes place a town
            anchors += [(ent.start_char, ent.end_char) for ent in doc.ents if ent.label_ in ("GPE", "LOC", "FAC")]
        spans.extend(self._neighbours(text, anchors + [(s, e) for s, e, _ in spans]))
        spans.extend(self._street_lines(text, sorted({(s, e) for s, e, _ in spans})))
        spans.extend(self._towns(text, sorted({(s, e) for s, e, _ in spans})))
        return [
            RecognizerResult(
                ENTITY,
                start,
                end,
                score,
                analysis_explanation=NO_EXPLANATION,
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                    STREET_KEY: score == STREET_SCORE,
                },
            )
            for start, end, score in spans
            if end > start
        ]

    def _places(self, text: str, view: TokenView, anchors: list[tuple[int, int]]) -> list[tuple[int, int, float]]:
        """Capitalised runs of 1-4 tokens that name a place (longest first)."""
        found: list[tuple[int, int, float]] = []
        texts, starts, ends = view.texts, view.starts, view.ends
        count, index = len(texts), 0
        while index < count:
            first = texts[index][:1]
            if not (first.isupper() and first.isalpha()):
                index += 1
                continue
            longest = min(4, count - index) if view.folded[index] in self.prefixes else 1
            for size in range(longest, 0, -1):
                last = index + size - 1
                if size > 1 and not texts[last][:1].isalpha():
                    continue
                name = view.folded[index] if size == 1 else fold(text[starts[index] : ends[last]])
                kind = self.places.get(name)
                if kind is None:
                    # a small town counts only where a place is said to follow or beside an address
                    if name in self.villages and self._placed(view, index, anchors):  # never a name: sure
                        found.append((starts[index], ends[last], SURE_PLACE_SCORE))
                        index += size - 1
                        break
                    continue
                if name in _CALENDAR and not self._beside(view, index, anchors):
                    break  # "in March", "on Sunday": a date, a place only beside an address
                ambiguous = (
                    name in self.common or len(name) < 3 or kind == "town" or name in self.first or name in self.last
                )
                placed = self._placed(view, index, anchors)
                if size == 1 and ambiguous and kind not in ("country", "state") and not placed:
                    break
                # a known place that is not also a name, or one after "in"/"from"..., outweighs spaCy's small
                # model calling it a person ("in Kraków")
                sure = placed or not (ambiguous or name in self.first or name in self.last)
                found.append((starts[index], ends[last], SURE_PLACE_SCORE if sure else PLACE_SCORE))
                index += size - 1
                break
            index += 1
        return found

    @staticmethod
    def _placed(view: TokenView, index: int, anchors: list[tuple[int, int]]) -> bool:
        """An ambiguous place counts after a preposition of place or next to another location."""
        if index and view.lowers[index - 1] in _PLACE_PREPOSITIONS:
            return True
        return LocationRecognizer._beside(view, index, anchors)

    @staticmethod
    def _beside(view: TokenView, index: int, anchors: list[tuple[int, int]]) -> bool:
        """The token at ``index`` is next to another location (two characters apart at most)."""
        start, end = view.starts[index], view.ends[index]
        return any(0 <= start - e <= 2 or 0 <= s - end <= 2 for s, e in anchors)

    @staticmethod
    def _street_lines(text: str, pieces: list[tuple[int, int]]) -> list[tuple[int, int, float]]:
        """Lines of a name and a number next to another piece of an address (see :data:`_STREET_LINE`)."""
        if not pieces:
            return []
        found = []
        for match in _STREET_LINE.finditer(text):
            for start, end in pieces:
                gap = (
                    text[match.end() : start]
                    if match.end() <= start
                    else text[end : match.start()]
                    if end <= match.start()
                    else None
                )
                if gap is not None and len(gap) <= 6 and ("\n" in gap or "\\n" in gap) and _GAP.match(gap):
                    found.append((match.start(), match.end(), STREET_SCORE))
                    break
        return found

    def _towns(self, text: str, pieces: list[tuple[int, int]]) -> list[tuple[int, int, float]]:
        """A capitalised run right after a location piece (a line or a comma away, or a space after a
        postcode) that is not a known first name nor a common word: the town of an address (``Apt. 390\\n Walshausen``, ``Lindenstraße 4, Kleinstadt``)."""
        found = []
        for _, end in pieces:
            lead = _LEAD.match(text, end)
            assert lead is not None  # the pattern matches the empty string
            match = _CAPITALISED_RUN.match(text, end + len(lead.group()))
            if not match or match.start() - end > 6:
                continue
            gap = text[end : match.start()]
            words = match.group().rstrip(".-").split()
            after_postcode = gap.strip(" ") == "" and _POSTCODE_END.search(text, max(0, end - 8), end)
            if (
                ("," in gap or "\n" in gap or "\\n" in gap or after_postcode)
                and fold(words[0]) not in self.first
                and not any(fold(word) in self.common for word in words)
            ):
                found.append((match.start(), match.start() + len(match.group().rstrip(".-")), STREET_SCORE))
        return found

    @staticmethod
    def _neighbours(text: str, anchors: list[tuple[int, int]]) -> list[tuple[int, int, float]]:
        """Postcodes and region codes that touch a location piece: after it (``Austin, TX 78701``: the code
        after the city, the postcode after the code) or before it (``10969 Berlin``). A piece may be up to six
        characters of spaces, commas and line breaks away."""
        if not anchors:
            return []
        candidates = list(_NEIGHBOUR.finditer(text))
        if not candidates:
            return []
        ends = {end for _, end in anchors}
        starts = {start for start, _ in anchors}
        found: list[tuple[int, int, float]] = []
        taken: set[int] = set()
        for _ in range(3):  # a chain of pieces grows one piece per pass
            grew = False
            for match in candidates:
                if match.start() in taken:
                    continue
                value = match.group()
                if value.isalpha() and value not in REGION_CODES:
                    continue
                after = any(
                    end in ends and _GAP_RUN.fullmatch(text, end, match.start())
                    for end in range(max(0, match.start() - 6), match.start() + 1)
                )
                before = not value.isalpha() and any(  # a region code follows its city, never precedes it
                    start in starts and _GAP_RUN.fullmatch(text, match.end(), start)
                    for start in range(match.end(), min(len(text), match.end() + 6) + 1)
                )
                if after or before:
                    found.append((match.start(), match.end(), POSTCODE_SCORE))
                    taken.add(match.start())
                    ends.add(match.end())
                    starts.add(match.start())
                    grew = True
            if not grew:
                break
        return found
