"""PERSON recall beyond the small NER: names after a title or a cue, first + last name pairs, single first
names in running text, and the NER's own names grown by adjacent name tokens.

Evidence, strongest first (each over spaCy's tokens, no regex per name):

1. **A title or a cue** before a run of capitalised tokens: ``Mr``, ``Ms``, ``Dr``, ``Prof`` ...; ``my name is``,
   ``Name:``, ``Dear``, ``Hi``, ``signed``, a sign-off line (``Best regards,`` then the name on the next line),
   ``cardholder``, ``account holder``, ``assistant``.
2. **A first name followed by a last name** (Faker's lists of every Latin-script locale,
   :mod:`appliance.serve.pii.gazetteers`) or by a capitalised word that is not a known place, neither a
   common English word.
3. **A first name alone**, capitalised, not at a sentence's start (unless it opens a line as a speaker,
   ``Shawn: ...``), not a common word and not a known place.
4. **spaCy's PERSON spans** grown over adjacent initials and name tokens (``Leigha C Mackay``).

Runs are at most four tokens, may hold initials (``E.``) and particles (``de``, ``van der``, ``bin``); a run
stops at a line break or punctuation.
"""

from __future__ import annotations

from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult

from appliance.serve.pii.gazetteers import common_words, person_names, place_names
from appliance.serve.pii.tokens import NO_EXPLANATION, TokenView, token_view

ENTITY = "PERSON"
CUED_SCORE = 0.9
PAIR_SCORE = 0.7
SINGLE_SCORE = 0.55
OVER_NER_SCORE = 0.86  # above spaCy's 0.85

TITLES = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "professor",
        "sir",
        "dame",
        "madam",
        "herr",
        "frau",
        "mme",
        "mlle",
        "monsieur",
        "madame",
        "sr",
        "sra",
        "srta",
        "señor",
        "señora",
        "sig",
        "signor",
        "signora",
        "sheikh",
        "rev",
        "fr",
        "capt",
        "captain",
    }
)
# Cues after which the next capitalised run is a name: single tokens, and phrases (as lower-cased token tuples).
CUES = frozenset(
    {
        "dear",
        "hi",
        "hello",
        "hey",
        "signed",
        "cardholder",
        "attn",
        "attention",
        "regards",
        "sincerely",
        "cheers",
        "thanks",
        "best",
        "assistant",
        "colleague",
        "manager",
        "holder",
        "named",
        "spoke",
        "called",
        "met",
        "with",
        "name",
    }
)
PHRASES = (
    ("my", "name", "is"),
    ("name", "is"),
    ("i", "am"),
    ("i", "'m"),
    ("this", "is"),
    ("call", "me"),
    ("name", ":"),
    ("contact", ":"),
    ("from", ":"),
    ("c", "/", "o"),
)
CUE_STARTS = TITLES | CUES | {phrase[0] for phrase in PHRASES}
# Cues that only say "a name may follow": the run must start with a known first or last name.
WEAK_CUES = frozenset({"with", "called", "met", "spoke", "name", "this", "is", "am", "'m", "me"})
PARTICLES = frozenset(
    {
        "de",
        "van",
        "der",
        "von",
        "da",
        "di",
        "le",
        "la",
        "del",
        "della",
        "bin",
        "ibn",
        "al",
        "el",
        "dos",
        "das",
        "du",
        "ter",
        "ten",
        "den",
        "st",
        "mac",
        "o'",
    }
)
NOT_NAMES = frozenset(
    {
        "customer",
        "customers",
        "sir",
        "madam",
        "team",
        "all",
        "everyone",
        "colleagues",
        "friends",
        "support",
        "there",
        "guys",
        "folks",
        "user",
        "admin",
        "bot",
        "agent",
        "assistant",
        "system",
        "operator",
        "client",
        "guest",
    }
)
# Nationalities and languages: capitalised, never a person by themselves ("great Danish food").
DEMONYMS = frozenset(
    """american british english irish scottish welsh canadian australian french german dutch
danish swedish norwegian finnish icelandic polish czech slovak hungarian romanian bulgarian greek turkish russian
ukrainian italian spanish portuguese brazilian mexican argentine chilean peruvian colombian chinese japanese
korean vietnamese thai indian pakistani arabic arab persian iranian israeli egyptian nigerian kenyan african
european asian latin swiss austrian belgian croatian serbian slovenian estonian latvian lithuanian""".split()
)


class NameRecognizer(EntityRecognizer):
    """Names from titles, cues, name lists and the NER's own spans (see the module docstring)."""

    name: str  # set by EntityRecognizer.__init__ (presidio leaves it untyped)

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=[ENTITY], supported_language=supported_language, name="NameRecognizer")
        self.first, self.last = person_names()
        self.common = common_words()
        self.places = place_names()

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        view = token_view(nlp_artifacts, text)
        if ENTITY not in entities or view is None or not len(view):
            return []
        texts, lowers, starts, ends = view.texts, view.folded, view.starts, view.ends
        found: list[tuple[int, int, float]] = []
        ner_places = {ent.start_char for ent in nlp_artifacts.tokens.ents if ent.label_ in ("GPE", "LOC")}
        index, count = 0, len(texts)
        while index < count:
            if not (texts[index][:1].isupper() or lowers[index] in CUE_STARTS):
                index += 1  # most tokens: neither a capitalised word nor the start of a cue
                continue
            cue = self._cue(view, index)
            if cue:
                start = index + cue
                while start < count and texts[start] in (".", ",", ":"):
                    start += 1
                end = self._run(view, start)
                weak = lowers[index] in WEAK_CUES or lowers[index + cue - 1] in WEAK_CUES
                if (
                    end > start
                    and lowers[start] not in NOT_NAMES
                    and (not weak or lowers[start] in self.first or lowers[start] in self.last)
                ):
                    found.append((starts[start], ends[end - 1], CUED_SCORE))
                    index = end
                    continue
            if self._namelike(texts[index], lowers[index]):
                end = self._run(view, index)
                names = [i for i in range(index, end) if self._namelike(texts[i], lowers[i])]
                # "Giacinta R Lombardi": two name-like words around an initial are a name whoever's lists
                initialled = (
                    any(self._initial(texts[i]) for i in range(index, end)) and lowers[index] not in self.places
                )
                if len(names) >= 2 and (
                    initialled
                    or lowers[names[0]] in self.first
                    and (
                        lowers[names[-1]] in self.last
                        or lowers[names[-1]] in self.first
                        or lowers[names[-1]] not in self.places
                    )
                ):
                    found.append((starts[index], ends[end - 1], PAIR_SCORE))
                    index = end
                    continue
                mid_sentence = (
                    index > 0 and texts[index - 1] not in (".", ":", "!", "?") and not texts[index - 1].isspace()
                )
                speaker = end == index + 1 and end < count and texts[end] == ":"  # "Shawn: Remember me?"
                # "Emily is very reliable": a first name opening a sentence, a lower-case word after it
                subject = end == index + 1 and end < count and (texts[end][:1].islower() or lowers[end] == "'s")
                if (
                    len(names) == 1
                    and lowers[index] in self.first
                    and lowers[index] not in self.places
                    and lowers[index] not in NOT_NAMES
                    and not texts[index].isupper()
                    and (mid_sentence or speaker or subject)
                ):
                    # spaCy's small model often calls a foreign first name a place: a name the place list
                    # does not know outweighs it
                    score = OVER_NER_SCORE if starts[index] in ner_places else SINGLE_SCORE
                    found.append((starts[index], ends[index], score))
            index += 1
        found.extend(self._grown(nlp_artifacts.tokens, view))
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
                },
            )
            for start, end, score in found
        ]

    def _namelike(self, text: str, lower: str) -> bool:
        return (
            len(text) > 1
            and text[0].isupper()
            and text[0].isalpha()
            and lower not in self.common
            and lower not in DEMONYMS
            and not any(char.isdigit() for char in text)
        )

    @staticmethod
    def _initial(text: str) -> bool:
        return (len(text) == 1 and text.isupper()) or (len(text) == 2 and text[0].isupper() and text[1] == ".")

    def _run(self, view: TokenView, start: int) -> int:
        """End (exclusive) of the run of name tokens from ``start``: at most four names, with initials and
        particles inside; it never ends on an initial or a particle, and never crosses a line break."""
        texts, lowers = view.texts, view.folded
        index, names, end = start, 0, start
        while index < len(texts) and names < 4:
            text, lower = texts[index], lowers[index]
            if self._namelike(text, lower) or (text[:1].isupper() and (lower in self.first or lower in self.last)):
                names += 1
                end = index + 1
            elif not (index > start and (self._initial(text) or lower in PARTICLES)):
                break
            if not view.spaced[index] and index + 1 < len(texts) and not texts[index + 1][:1].isalpha():
                break  # "Smith," "Smith." "Smith\n": the run ends here ("O'Brien" goes on)
            index += 1
        return end

    def _cue(self, view: TokenView, index: int) -> int:
        """Tokens taken by a cue that starts at ``index`` (0: none)."""
        texts, lowers = view.texts, view.folded
        lower = lowers[index].rstrip(".")
        if lower in TITLES and texts[index][:1].isupper():
            return 2 if index + 1 < len(texts) and texts[index + 1] == "." else 1
        for phrase in PHRASES:
            if tuple(lowers[index : index + len(phrase)]) == phrase:
                return len(phrase)
        if lower in CUES:
            nxt = index + 1
            if lower in ("regards", "sincerely", "cheers", "thanks", "best"):  # a sign-off: the name on the next line
                while nxt < len(texts) and texts[nxt] in (",", "!", "."):
                    nxt += 1
                if nxt < len(texts) and texts[nxt].isspace() and "\n" in texts[nxt]:
                    return nxt + 1 - index
                return 0
            if lower == "holder" and (index == 0 or lowers[index - 1] not in ("account", "card")):
                return 0
            return 1
        return 0

    def _grown(self, doc: Any, view: TokenView) -> list[tuple[int, int, float]]:
        """spaCy's PERSON spans grown over adjacent initials and name-list tokens."""
        grown = []
        texts, lowers = view.texts, view.folded
        for ent in doc.ents:
            if ent.label_ != "PERSON":
                continue
            start, end = ent.start, ent.end
            while (
                start > 0
                and view.spaced[start - 1]
                and (self._initial(texts[start - 1]) or self._listed(texts[start - 1], lowers[start - 1]))
            ):
                start -= 1
            while (
                end < len(texts)
                and view.spaced[end - 1]
                and (self._initial(texts[end]) or self._listed(texts[end], lowers[end]))
            ):
                end += 1
            if (start, end) != (ent.start, ent.end):
                grown.append((view.starts[start], view.ends[end - 1], PAIR_SCORE))
        return grown

    def _listed(self, text: str, lower: str) -> bool:
        return self._namelike(text, lower) and (lower in self.first or lower in self.last)
