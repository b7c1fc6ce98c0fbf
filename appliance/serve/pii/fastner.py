"""spaCy's NER with exactly spaCy's entities, about three times as fast on one core.

Two costs dominate spaCy 3.8's NER on CPU, and neither is the model's arithmetic:

1. **thinc's matrix products go through the ``blis`` wheel, which is built for the generic reference kernel**
   (``BLIS_ARCH_DEBUG=1`` prints ``selecting sub-configuration 'generic'`` on an AVX-512 CPU); numpy's bundled
   OpenBLAS picks its kernel at run time and is 3-4x faster on the same shapes. :class:`OpenBlasOps` is thinc's
   :class:`NumpyOps` with ``gemm`` done by ``numpy.matmul``: same results (float32, same shapes).
2. **The greedy transition loop pays for the GIL on every token.** spaCy's loop runs with the GIL released,
   and the state accessors its validity checks call many times per token (``StateC.B_``) take it back (the
   compiled 3.8 wheels do this), so most of the loop is GIL hand-offs. :func:`parse_entities` runs the same
   greedy parse with arrays instead: the model's step (gather the precomputed features of the state's tokens,
   add, maxout, upper layer), the BILUO validity rules of ``ner.pyx`` as masks, the best valid move. The
   document is cut into chunks at sentence punctuation that are parsed side by side, one batched step for all
   of them, so a 1 KB text takes ~30 steps instead of ~200.

Why the chunks give exactly the entities of the whole-document parse: the NER's state features are the
next token, the first token of the open entity and the token before the next one when an entity is open
(``StateC.set_context_tokens`` with ``nF == 3``), and which moves are valid depends on the same state. So
from any token where no entity is open, the greedy parse goes on the same way whatever came before. A chunk
starts at such a point (no entity open), and the chunk before it must reach it with no entity open too;
when it does not (an entity runs over the chunk's end), the earlier chunk carries on and the later chunk's
work is dropped. Tested against spaCy's own parse, entity for entity (tests/unit/serve/pii/test_fastner.py).

Used only where that argument holds: a greedy (``beam_width == 1``) ``EntityRecognizer`` with 3 state
features, maxout and an upper layer, on a document without preset entities; anything else runs as spaCy runs
it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy
from thinc.api import NumpyOps

# Punctuation after which a chunk may start (tokens' text), and the shortest chunk in tokens. Short chunks
# mean fewer batched steps; too short and entities like "Washington, D.C." run over chunk ends (still exact,
# just less parallel).
CHUNK_AFTER = (".", "!", "?", ";", ":", ",")
MIN_CHUNK_TOKENS = 8


class OpenBlasOps(NumpyOps):
    """thinc's CPU ops with matrix products by ``numpy.matmul`` (numpy's OpenBLAS) instead of blis."""

    name = "appliance_openblas"

    def gemm(self, x, y, out=None, trans1=False, trans2=False):  # type: ignore[no-untyped-def]
        a = x.T if trans1 else x
        b = y.T if trans2 else y
        if out is None:
            return numpy.matmul(a, b)
        numpy.matmul(a, b, out=out)
        return out


@cache
def openblas_ops() -> OpenBlasOps:
    """The one :class:`OpenBlasOps` instance."""
    return OpenBlasOps()


def use_openblas(nlp: Any) -> None:
    """Every model node of ``nlp``'s components computes with :func:`openblas_ops` (CPU only)."""
    ops = openblas_ops()
    for _, component in nlp.pipeline:
        model = getattr(component, "model", None)
        if model is None or not hasattr(model, "walk"):
            continue
        for node in model.walk():
            if isinstance(node.ops, NumpyOps):
                node.ops = ops


def chunkable(component: Any) -> bool:
    """True for a greedy NER whose parse :func:`parse_entities` may split (see the module's docstring)."""
    from spacy.pipeline import EntityRecognizer

    if not isinstance(component, EntityRecognizer) or component.cfg.get("beam_width", 1) != 1:
        return False
    try:
        model = component.model
        if model.get_ref("lower").get_dim("nF") != 3 or model.get_ref("lower").get_dim("nP") < 2:
            return False
        if not model.attrs.get("has_upper"):
            return False
        _Moves(component)
    except (KeyError, ValueError, AttributeError):
        return False
    return True


def chunk_starts(doc: Any, min_tokens: int = MIN_CHUNK_TOKENS) -> list[int]:
    """Token indices where chunks start: 0, then after sentence punctuation or whitespace tokens, at least
    ``min_tokens`` apart."""
    from spacy.attrs import IS_SPACE, ORTH

    if len(doc) == 0:
        return [0]
    after = numpy.array([doc.vocab.strings.add(text) for text in CHUNK_AFTER], dtype="uint64")
    attrs = doc.to_array([ORTH, IS_SPACE])
    candidates = (numpy.isin(attrs[:, 0], after) | (attrs[:, 1] == 1)).nonzero()[0] + 1
    starts, last = [0], 0
    for index in candidates.tolist():
        if index < len(doc) and index - last >= min_tokens:
            starts.append(index)
            last = index
    return starts


class _Scorer:
    """The NER model's step as a few array operations: the lower layer precomputed once for every token, then
    per step gather the state's features, add, maxout, and the upper layer (spaCy's ``predict_states``)."""

    def __init__(self, ner: Any, doc: Any) -> None:
        model = ner.model
        tokvecs = model.get_ref("tok2vec").predict([doc])
        lower = model.get_ref("lower")
        self.features = lower.predict(tokvecs)  # (tokens + 1, nF, nO, nP); row 0 is the padding
        self.slots = numpy.arange(self.features.shape[1])  # feature f of a token is features[token + 1, f]
        self.bias = lower.get_param("b")
        upper = model.get_ref("upper")
        self.weights_t = numpy.ascontiguousarray(upper.get_param("W").T)
        self.upper_bias = upper.get_param("b")
        self.unseen = sorted(model.attrs.get("unseen_classes") or ())

    def __call__(self, ids: numpy.ndarray) -> numpy.ndarray:
        hidden = self.features[ids + 1, self.slots].sum(axis=1) + self.bias  # (states, nO, nP)
        scores = numpy.matmul(hidden.max(axis=2), self.weights_t) + self.upper_bias
        if self.unseen:
            scores[:, self.unseen] = numpy.nanmin(scores)
        return scores


# BILUO moves of spaCy's NER transition system (spacy/pipeline/_parser_internals/ner.pyx)
MISSING, BEGIN, IN, LAST, UNIT, OUT = range(6)
_MOVE_OF = {"M": MISSING, "B": BEGIN, "I": IN, "L": LAST, "U": UNIT, "O": OUT}


class _Moves:
    """Each class's move and label, as arrays (label 0: none)."""

    def __init__(self, ner: Any) -> None:
        moves, labels, names = [], [], {"": 0}
        for index in range(ner.moves.n_moves):
            kind, _, label = ner.moves.get_class_name(index).partition("-")
            moves.append(_MOVE_OF[kind])
            labels.append(names.setdefault(label, len(names)))
        self.move = numpy.array(moves)
        self.label = numpy.array(labels)
        self.names = {number: name for name, number in names.items()}
        labelled = self.label != 0
        self.begin, self.inside = (self.move == BEGIN) & labelled, (self.move == IN) & labelled
        self.last, self.unit, self.out = (self.move == LAST) & labelled, (self.move == UNIT) & labelled, self.move == OUT


def parse_entities(ner: Any, doc: Any, min_tokens: int = MIN_CHUNK_TOKENS, moves: _Moves | None = None) -> Any:
    """Run the greedy NER ``ner`` (see :func:`chunkable`) over ``doc`` in chunks; sets ``doc.ents``.

    The transition system is spaCy's BiluoPushDown for a document without preset entities (``doc.ents``
    empty: the only case used here; any other goes to the component itself): the validity rules of
    ``ner.pyx`` (``Begin/In/Last/Unit/Out.is_valid``) as array masks, the best valid move per chunk, and the
    entity it opens or closes. ``moves``: ``ner``'s moves, when the caller has them already."""
    from spacy.attrs import ENT_IOB, IS_SPACE, SENT_START
    from spacy.tokens import Span

    length = len(doc)
    if length == 0:
        return doc
    attrs = doc.to_array([ENT_IOB, IS_SPACE, SENT_START])
    if attrs[:, 0].any():  # preset entities: spaCy's own parse
        return ner(doc)
    space = attrs[:, 1].astype(bool)
    next_starts = numpy.append(attrs[1:, 2] == 1, False)  # the next token starts a sentence
    moves = moves or _Moves(ner)
    score = _Scorer(ner, doc)
    starts = chunk_starts(doc, min_tokens)
    position = list(starts)  # per chunk: the next token
    opened = [-1] * len(starts)  # per chunk: the open entity's first token, or -1
    label = [0] * len(starts)  # per chunk: the open entity's label, or 0
    found: list[list[tuple[int, int, int]]] = [[] for _ in starts]
    ends = starts[1:] + [length + 1]
    following: list[int | None] = [*range(1, len(starts)), None]
    kept = [True] * len(starts)
    running = list(range(len(starts)))
    while running:
        at = numpy.array([position[i] for i in running])
        first = numpy.array([opened[i] for i in running])
        is_open = first >= 0
        ids = numpy.stack([at, first, numpy.where(is_open, at - 1, -1)], axis=1)
        scores = score(ids)
        has_next = at + 1 < length
        no_break = ~next_starts[at]
        blank = space[at]
        open_label = numpy.array([label[i] for i in running])[:, None]
        valid = (
            (moves.out & ~is_open[:, None])
            | (moves.begin & (~is_open & has_next & no_break & ~blank)[:, None])
            | (moves.inside & (is_open & has_next & no_break)[:, None] & (moves.label == open_label))
            | (moves.last & is_open[:, None] & (moves.label == open_label))
            | (moves.unit & (~is_open & ~blank)[:, None])
        )
        best = numpy.where(valid, scores, -numpy.inf).argmax(axis=1).tolist()
        still = []
        for row, index in enumerate(running):
            move, tag, token = moves.move[best[row]], moves.label[best[row]], position[index]
            if move == BEGIN:
                opened[index], label[index] = token, tag
            elif move == LAST:
                found[index].append((opened[index], token + 1, label[index]))
                opened[index], label[index] = -1, 0
            elif move == UNIT:
                found[index].append((token, token + 1, tag))
            position[index] = token + 1
            if position[index] >= length:
                continue  # the document's end (an open entity is always closed by its last token)
            if position[index] >= ends[index]:
                if opened[index] < 0:
                    continue  # reached the next chunk's start with no entity open: that chunk goes on
                later = following[index]  # an entity runs over the end: carry on, drop the next chunk
                assert later is not None  # the last chunk's end is past the document's end
                kept[later] = False
                ends[index], following[index] = ends[later], following[later]
            still.append(index)
        running = [index for index in still if kept[index]]
    spans = [Span(doc, start, end, label=moves.names[tag])
             for index, chunk in enumerate(found) if kept[index] for start, end, tag in chunk]  # fmt: skip
    doc.set_ents(spans, default="outside")
    return doc


def fast_pipeline(nlp: Any) -> Callable[[str], Any]:
    """``nlp`` as a function of the text, with every :func:`chunkable` NER run by :func:`parse_entities` (which
    components those are is decided here, once)."""
    steps: list[Callable[[Any], Any]] = []
    for _, component in nlp.pipeline:
        if not chunkable(component):
            steps.append(component)
            continue
        moves = _Moves(component)
        hooks = tuple(getattr(component, "postprocesses", ()))

        def ner(doc: Any, component: Any = component, moves: _Moves = moves, hooks: tuple = hooks) -> Any:
            parse_entities(component, doc, moves=moves)
            for hook in hooks:
                hook(doc)
            return doc

        steps.append(ner)

    def run(text: str) -> Any:
        doc = nlp.make_doc(text)
        for step in steps:
            doc = step(doc)
        return doc

    return run
