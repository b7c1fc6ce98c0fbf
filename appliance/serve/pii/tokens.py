"""A document's tokens as plain lists, made once per analysis and shared by the recall recognizers.

spaCy's ``Token`` objects are made anew on every access; the name and place recognizers look at every token
several times, so they read these lists instead (one ``Doc.to_array`` call and string slices).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.serve.pii.gazetteers import fold

_CACHED = "_appliance_token_view"
# The recall recognizers' results carry no explanation: presidio types the argument AnalysisExplanation, with
# None as its own default, so the None is passed typed as Any.
NO_EXPLANATION: Any = None


@dataclass(frozen=True)
class TokenView:
    texts: list[str]
    starts: list[int]
    ends: list[int]
    spaced: list[bool]  # whitespace follows the token
    sent_starts: list[bool]
    lowers: list[str]
    folded: list[str]  # lower case without accents (gazetteer look-ups)

    def __len__(self) -> int:
        return len(self.texts)


def token_view(nlp_artifacts: Any, text: str) -> TokenView | None:
    """The tokens of ``nlp_artifacts.tokens`` (a spaCy ``Doc`` of ``text``: ``Doc.text`` is rebuilt token by
    token on every access), cached on the artifacts; None without a doc."""
    if nlp_artifacts is None:
        return None
    view: TokenView | None = getattr(nlp_artifacts, _CACHED, None)
    if view is not None:
        return view
    doc = getattr(nlp_artifacts, "tokens", None)
    if doc is None:
        return None
    from spacy.attrs import IDX, LENGTH, SENT_START, SPACY

    rows = doc.to_array([IDX, LENGTH, SPACY, SENT_START]).tolist() if len(doc) else []
    texts = [text[start : start + length] for start, length, _, _ in rows]
    lowers = [token.lower() for token in texts]
    view = TokenView(
        texts=texts,
        starts=[row[0] for row in rows],
        ends=[row[0] + row[1] for row in rows],
        spaced=[bool(row[2]) for row in rows],
        sent_starts=[row[3] == 1 for row in rows],
        lowers=lowers,
        folded=[fold(lower) if not lower.isascii() else lower for lower in lowers],
    )
    try:
        setattr(nlp_artifacts, _CACHED, view)
    except AttributeError:  # pragma: no cover - a artifacts object with __slots__
        pass
    return view
