"""spaCy's NER with exactly spaCy's entities, about four times as fast on one core.

Two costs dominate spaCy 3.8's NER on CPU, and neither is the model's arithmetic:

1. **thinc's matrix products go through the ``blis`` wheel, which is built for the generic reference kernel**
   (``BLIS_ARCH_DEBUG=1`` prints ``selecting sub-configuration 'generic'`` on an AVX-512 CPU); numpy's bundled
   OpenBLAS picks its kernel at run time and is 3-4x faster on the same shapes. :class:`OpenBlasOps` is thinc's
   :class:`NumpyOps` with ``gemm`` done by ``numpy.matmul``: same results (float32, same shapes).
2. **The greedy transition loop pays for the GIL on every token.** spaCy's loop runs with the GIL released,
   and the state accessors its validity checks call many times per token (``StateC.B_``) take it back (the
   compiled 3.8 wheels do this), so most of the loop is GIL hand-offs. :func:`parse_entities` runs the same
   greedy parse with arrays instead: the model's step (gather the precomputed features of the state's tokens,
   add, maxout, upper layer), the BILUO validity rules of ``ner.pyx`` as masks, the best valid move. Every
   token's move is decided side by side, then every entity begun is continued side by side, so a 1 KB text
   (~200 tokens) takes one step more than its longest entity has tokens instead of ~200 steps.

Why that gives exactly the entities of the one-token-at-a-time parse: the NER's state features are the
next token, the first token of the open entity and the token before the next one when an entity is open
(``StateC.set_context_tokens`` with ``nF == 3``), and which moves are valid depends on the same state. So
from any token reached with no entity open, the greedy parse goes on the same way whatever came before: its
move is the one decided for it as if it were the first token, and an entity it begins goes on as its own
continuation does. Tested against spaCy's own parse, entity for entity (tests/unit/serve/pii/test_fastner.py).

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


class _Scorer:
    """The NER model's step as a few array operations: the lower layer precomputed once for every token, then
    per step gather the state's features, add, maxout, and the upper layer (spaCy's ``predict_states``)."""

    def __init__(self, ner: Any, doc: Any) -> None:
        model = ner.model
        tokvecs = model.get_ref("tok2vec").predict([doc])
        lower = model.get_ref("lower")
        self.features = lower.predict(tokvecs)  # (tokens + 1, nF, nO, nP); row 0 is the padding
        self.bias = lower.get_param("b")
        upper = model.get_ref("upper")
        self.weights_t = numpy.ascontiguousarray(upper.get_param("W").T)
        self.upper_bias = upper.get_param("b")
        self.unseen = sorted(model.attrs.get("unseen_classes") or ())

    def __call__(self, ids: numpy.ndarray) -> numpy.ndarray:
        """Scores of every class for each state, ``ids`` (states, nF): its feature tokens, -1 for none. The
        features are added in spaCy's order (first to last, then the bias), so the sums are bit for bit the
        same."""
        features = self.features
        hidden = features[ids[:, 0] + 1, 0]
        for slot in range(1, features.shape[1]):
            hidden += features[ids[:, slot] + 1, slot]
        return self._upper(hidden)

    def alone(self) -> numpy.ndarray:
        """Scores of every class for each token as the next one with no entity open: ``self(ids)`` for ids
        ``[[token, -1, -1], ...]``, without the gather (the other features are the padding row)."""
        features = self.features
        hidden = features[1:, 0] + features[0, 1]
        for slot in range(2, features.shape[1]):
            hidden += features[0, slot]
        return self._upper(hidden)

    def _upper(self, hidden: numpy.ndarray) -> numpy.ndarray:
        hidden += self.bias  # (states, nO, nP)
        pieces = hidden[..., 0]
        for piece in range(1, hidden.shape[2]):
            pieces = numpy.maximum(pieces, hidden[..., piece])
        scores = numpy.matmul(pieces, self.weights_t)
        scores += self.upper_bias
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


def parse_entities(ner: Any, doc: Any, moves: _Moves | None = None) -> Any:
    """Run the greedy NER ``ner`` (see :func:`chunkable`) over ``doc``, every token side by side; sets
    ``doc.ents``.

    The transition system is spaCy's BiluoPushDown for a document without preset entities (``doc.ents``
    empty: the only case used here; any other goes to the component itself), with the validity rules of
    ``ner.pyx`` (``Begin/In/Last/Unit/Out.is_valid``) as array masks:

    1. one batched step decides every token's move as if no entity were open before it (O, U or B);
    2. every entity begun (B) in step 1 is continued side by side, one batched step per token (I or L),
       until it is closed (L);
    3. the parse walks the tokens from the first: a token reached with no entity open takes its step-1 move,
       and a B jumps to the end of its continuation. Moves of tokens jumped over are never read.

    ``moves``: ``ner``'s moves, when the caller has them already."""
    from spacy.attrs import ENT_IOB, IS_SPACE, SENT_START
    from spacy.tokens import Span

    length = len(doc)
    if length == 0:
        return doc
    attrs = doc.to_array([ENT_IOB, IS_SPACE, SENT_START])
    if attrs[:, 0].any():  # preset entities: spaCy's own parse
        return ner(doc)
    moves = moves or _Moves(ner)
    score = _Scorer(ner, doc)
    space = attrs[:, 1].astype(bool)
    # an entity may go on past a token that is not the last and is not followed by a sentence start
    goes_on = numpy.append(attrs[1:, 2] != 1, False)
    valid = moves.out | (moves.begin & (goes_on & ~space)[:, None]) | (moves.unit & ~space[:, None])
    first_moves = _best(score.alone(), valid)
    kind, tag = moves.move[first_moves], moves.label[first_moves]
    ends: dict[int, int] = {}  # entity's first token -> the token after its last
    first = (kind == BEGIN).nonzero()[0]
    at, open_label = first + 1, tag[first]
    while at.size:
        same_label = moves.label == open_label[:, None]
        valid = same_label & ((moves.inside & goes_on[at][:, None]) | moves.last)
        closing = moves.move[_best(score(numpy.stack([at, first, at - 1], axis=1)), valid)] == LAST
        ends.update(zip(first[closing].tolist(), (at[closing] + 1).tolist()))
        going = ~closing
        first, at, open_label = first[going], at[going] + 1, open_label[going]
    spans, token, kinds, tags = [], 0, kind.tolist(), tag.tolist()
    while token < length:
        if kinds[token] == BEGIN:
            spans.append(Span(doc, token, ends[token], label=moves.names[tags[token]]))
            token = ends[token]
            continue
        if kinds[token] == UNIT:
            spans.append(Span(doc, token, token + 1, label=moves.names[tags[token]]))
        token += 1
    doc.set_ents(spans, default="outside")
    return doc


def _best(scores: numpy.ndarray, valid: numpy.ndarray) -> numpy.ndarray:
    """Per row, the class with the highest score among the valid ones."""
    return numpy.where(valid, scores, -numpy.inf).argmax(axis=1)


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
            parse_entities(component, doc, moves)
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
