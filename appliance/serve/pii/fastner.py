"""spaCy's NER with exactly spaCy's entities, about four times as fast on one core.

Three costs dominate spaCy 3.8's NER on CPU, and none is the model's arithmetic:

1. **thinc's matrix products go through the ``blis`` wheel, which is built for the generic reference kernel**
   (``BLIS_ARCH_DEBUG=1`` prints ``selecting sub-configuration 'generic'`` on an AVX-512 CPU); numpy's bundled
   OpenBLAS picks its kernel at run time and is 3-4x faster on the same shapes. :class:`OpenBlasOps` is thinc's
   :class:`NumpyOps` with ``gemm`` done by ``numpy.matmul``: same results (float32, same shapes).
2. **The greedy transition loop pays for the GIL on every token.** spaCy's loop runs with the GIL released,
   and the state accessors its validity checks call many times per token (``StateC.B_``) take it back (the
   compiled 3.8 wheels do this), so most of the loop is GIL hand-offs. :meth:`ArrayNer.parse` runs the same
   greedy parse with arrays instead: the model's step (gather the precomputed features of the state's tokens,
   add, maxout, upper layer), the BILUO validity rules of ``ner.pyx`` as masks, the best valid move. Every
   token's move is decided side by side, then every entity begun is continued side by side, so a 1 KB text
   (~200 tokens) takes one step more than its longest entity has tokens instead of ~200 steps.
3. **thinc's layer objects.** In the NER's own tok2vec, the bookkeeping of ~60 layer objects and thinc's
   maxout kernel cost as much as a matrix product; :class:`_Tok2Vec` computes the same layers, in the same
   order with the same operations, as plain array code (bit for bit the same vectors).

Why that gives exactly the entities of the one-token-at-a-time parse: the NER's state features are the
next token, the first token of the open entity and the token before the next one when an entity is open
(``StateC.set_context_tokens`` with ``nF == 3``), and which moves are valid depends on the same state. So
from any token reached with no entity open, the greedy parse goes on the same way whatever came before: its
move is the one decided for it as if it were the first token, and an entity it begins goes on as its own
continuation does. Tested against spaCy's own parse, entity for entity (tests/unit/serve/pii/test_fastner.py).

Used only where that argument holds: a greedy (``beam_width == 1``) ``EntityRecognizer`` with 3 state
features, maxout and an upper layer, on a document without preset entities; anything else runs as spaCy runs
it. And used only when it proves itself at load (:func:`checked_fast_pipeline`): on the fixed
:data:`CANARY_TEXTS` it must find spaCy's own entities, else the replica runs spaCy's NER (a spaCy, thinc or
model version this code was not written against shows there, not in what gets masked).
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


def use_openblas(nlp: Any) -> Callable[[], None]:
    """Every model node of ``nlp``'s components computes with :func:`openblas_ops` (CPU only); returns the undo."""
    ops = openblas_ops()
    changed: list[tuple[Any, Any]] = []
    for _, component in nlp.pipeline:
        model = getattr(component, "model", None)
        if model is None or not hasattr(model, "walk"):
            continue
        for node in model.walk():
            if isinstance(node.ops, NumpyOps) and node.ops is not ops:
                changed.append((node, node.ops))
                node.ops = ops

    def undo() -> None:
        for node, previous in changed:
            node.ops = previous

    return undo


def array_parsable(component: Any) -> bool:
    """True for a greedy NER that :class:`ArrayNer` runs (see the module's docstring)."""
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


class _Tok2Vec:
    """The NER's own tok2vec of spaCy's trained pipelines (``spacy.Tok2Vec.v2``: ``MultiHashEmbed`` with or
    without static vectors, ``MaxoutWindowEncoder``) as array operations, without thinc's layer objects: hash
    embeddings of the token attributes (NORM, PREFIX, ...), the static vectors' projection when there are
    any, a maxout + layer norm, a residual maxout window encoder (padded as thinc's ``with_array`` pads it) and
    the linear projection. The same operations in the same order as thinc and spaCy (bit for bit the same
    vectors, tested), ~25 % faster: thinc's per-layer bookkeeping and its maxout kernel cost as much as a
    matrix product here. Any other architecture raises ValueError (the caller keeps thinc's ``predict``)."""

    def __init__(self, model: Any, vocab: Any = None) -> None:
        nodes = list(model.walk())

        def named(name: str) -> list[Any]:
            return [node for node in nodes if node.name == name]

        embeds = named("hashembed")
        depth = len(named("expand_window"))
        static = named("static_vectors")
        expected = (
            "extract_features>>list2ragged>>with_array("
            + "|".join(["ints-getitem>>hashembed"] * len(embeds))
            + ")"
            + ("|static_vectors" if static else "")
            + ">>with_array(maxout>>layernorm>>dropout)>>ragged2list"
            + ">>with_array("
            + ">>".join(["residual(expand_window>>maxout>>layernorm>>dropout)"] * depth)
            + ")>>list2array>>linear"
        )
        if model.name != expected or not embeds or not depth:
            raise ValueError(f"not the tok2vec this class computes: {model.name[:200]}")
        self.static: tuple[numpy.ndarray, Any, int] | None = None
        if static:  # spacy/ml/staticvectors.py: the vocabulary's vectors table, projected
            from spacy.attrs import ORTH
            from spacy.vectors import Mode, Vectors

            vectors = getattr(vocab, "vectors", None)
            if not isinstance(vectors, Vectors) or vectors.mode != Mode.default:
                raise ValueError("static vectors other than a plain vectors table")
            self.static = (static[0].get_param("W"), vectors, getattr(vectors, "attr", ORTH))
        self.columns = named("extract_features")[0].attrs["columns"]
        self.embeds = []
        for getitem, embed in zip(named("ints-getitem"), embeds):
            rows, column = getitem.attrs["index"]
            if rows != slice(0, None, None) or not isinstance(column, int):
                raise ValueError(f"unexpected column selection {getitem.attrs['index']!r}")
            self.embeds.append((column, embed.attrs["seed"], embed.get_param("E")))
        maxouts, norms = named("maxout"), named("layernorm")
        self.first = (self._maxout(maxouts[0]), self._norm(norms[0]))
        windows = [node.attrs["window_size"] for node in named("expand_window")]
        self.blocks = [
            (window, self._maxout(maxout), self._norm(norm))
            for window, maxout, norm in zip(windows, maxouts[1:], norms[1:])
        ]
        self.pad = next(node.attrs["pad"] for node in nodes if node.name.startswith("with_array(residual"))
        linear = named("linear")[0]
        self.linear = (linear.get_param("W"), linear.get_param("b"))
        self.ops = NumpyOps()

    @staticmethod
    def _maxout(node: Any) -> tuple[numpy.ndarray, numpy.ndarray, int, int]:
        out, pieces, into = node.get_dim("nO"), node.get_dim("nP"), node.get_dim("nI")
        return node.get_param("W").reshape(out * pieces, into), node.get_param("b").reshape(out * pieces), out, pieces

    @staticmethod
    def _norm(node: Any) -> tuple[numpy.ndarray, numpy.ndarray]:
        return node.get_param("G"), node.get_param("b")

    @staticmethod
    def _maxout_norm(inputs: numpy.ndarray, maxout: tuple[Any, ...], norm: tuple[Any, ...]) -> numpy.ndarray:
        """thinc's ``Maxout`` then ``LayerNorm`` (thinc/layers/maxout.py, layernorm.py), same arithmetic."""
        weights, bias, out, pieces = maxout
        summed = numpy.matmul(inputs, weights.T)
        summed += bias
        by_piece = summed.reshape(summed.shape[0], out, pieces)
        best = by_piece[..., 0]
        for piece in range(1, pieces):
            best = numpy.maximum(best, by_piece[..., piece])  # 30x faster than .max(axis=2) on this shape
        gain, shift = norm
        mean = best.mean(axis=1, keepdims=True)
        variance = best.var(axis=1, keepdims=True) + 1e-08
        normed = (best - mean) * variance ** (-1.0 / 2.0)
        normed = normed * gain
        normed += shift
        return normed

    def __call__(self, doc: Any) -> numpy.ndarray:
        ids = doc.to_array(self.columns).reshape(len(doc), -1)  # one column: a 1-d array
        embedded = []
        for column, seed, table in self.embeds:
            keys = self.ops.hash(numpy.ascontiguousarray(ids[:, column], dtype="uint64"), seed) % table.shape[0]
            embedded.append(self.ops.gather_add(table, keys))
        if self.static is not None:
            projection, table, attr = self.static
            rows = table.find(keys=doc.to_array(attr))
            static = numpy.matmul(numpy.ascontiguousarray(table.data[rows]), projection.T)
            static[rows < 0] = 0  # a word without a vector: zeros
            embedded.append(static)
        vectors = self._maxout_norm(numpy.hstack(embedded), *self.first)
        padding = numpy.zeros((self.pad, vectors.shape[1]), dtype=vectors.dtype)
        vectors = numpy.concatenate([padding, vectors, padding])  # thinc's with_array(pad=...) on one document
        for window, maxout, norm in self.blocks:
            vectors = vectors + self._maxout_norm(self.ops.seq2col(vectors, window), maxout, norm)
        weights, bias = self.linear
        projected = numpy.matmul(vectors[self.pad : self.pad + len(doc)], weights.T)
        projected += bias
        return projected


class _Layers:
    """The NER model's lower and upper layers, read once per component (not per document)."""

    def __init__(self, ner: Any) -> None:
        model = ner.model
        self.lower = model.get_ref("lower")
        self.bias = self.lower.get_param("b")
        upper = model.get_ref("upper")
        self.weights_t = numpy.ascontiguousarray(upper.get_param("W").T)
        self.upper_bias = upper.get_param("b")
        self.unseen = sorted(model.attrs.get("unseen_classes") or ())


class _Scorer:
    """The NER model's step over one document as a few array operations: the lower layer precomputed once for
    every token, then per step gather the state's features, add, maxout, and the upper layer (spaCy's
    ``predict_states``)."""

    def __init__(self, layers: _Layers, tokvecs: numpy.ndarray) -> None:
        self.layers = layers
        self.features = layers.lower.predict(tokvecs)  # (tokens + 1, nF, nO, nP); row 0 is the padding

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
        layers = self.layers
        hidden += layers.bias  # (states, nO, nP)
        pieces = hidden[..., 0]
        for piece in range(1, hidden.shape[2]):
            pieces = numpy.maximum(pieces, hidden[..., piece])
        scores = numpy.matmul(pieces, layers.weights_t)
        scores += layers.upper_bias
        if layers.unseen:
            scores[:, layers.unseen] = numpy.nanmin(scores)
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
        self.last, self.unit = (self.move == LAST) & labelled, (self.move == UNIT) & labelled
        self.out = self.move == OUT


class ArrayNer:
    """A greedy NER (see :func:`array_parsable`) run by arrays: its tok2vec by :class:`_Tok2Vec` where that
    class knows the architecture (thinc's ``predict`` otherwise), its parse by :meth:`parse`. Built once per
    component; a callable pipeline step like the component itself."""

    def __init__(self, ner: Any) -> None:
        self.ner = ner
        self.moves = _Moves(ner)
        self.layers = _Layers(ner)
        model = ner.model.get_ref("tok2vec")
        try:
            self.tok2vec: Callable[[Any], numpy.ndarray] = _Tok2Vec(model, ner.vocab)
        except (ValueError, KeyError, AttributeError, IndexError, StopIteration):
            self.tok2vec = lambda doc: model.predict([doc])
        self.hooks = tuple(getattr(ner, "postprocesses", ()))

    def __call__(self, doc: Any) -> Any:
        doc = self.parse(doc)
        for hook in self.hooks:
            hook(doc)
        return doc

    def parse(self, doc: Any) -> Any:
        """Set ``doc.ents`` as the NER's greedy parse sets them, every token side by side.

        The transition system is spaCy's BiluoPushDown for a document without preset entities (``doc.ents``
        empty: the only case used here; any other goes to the component itself), with the validity rules of
        ``ner.pyx`` (``Begin/In/Last/Unit/Out.is_valid``) as array masks:

        1. one batched step decides every token's move as if no entity were open before it (O, U or B);
        2. every entity begun (B) in step 1 is continued side by side, one batched step per token (I or L),
           until it is closed (L);
        3. the parse walks the tokens from the first: a token reached with no entity open takes its step-1
           move, and a B jumps to the end of its continuation. Moves of tokens jumped over are never read."""
        from spacy.attrs import ENT_IOB, IS_SPACE, SENT_START
        from spacy.tokens import Span

        length = len(doc)
        if length == 0:
            return doc
        attrs = doc.to_array([ENT_IOB, IS_SPACE, SENT_START])
        if attrs[:, 0].any():  # preset entities: spaCy's own parse
            return self.ner(doc)
        moves = self.moves
        score = _Scorer(self.layers, self.tok2vec(doc))
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
    """``nlp`` as a function of the text, with every :func:`array_parsable` NER run by :class:`ArrayNer`
    (which components those are is decided here, once)."""
    steps = [ArrayNer(component) if array_parsable(component) else component for _, component in nlp.pipeline]

    def run(text: str) -> Any:
        doc = nlp.make_doc(text)
        for step in steps:
            doc = step(doc)
        return doc

    return run


# What the fast NER must parse exactly as spaCy does before a replica uses it: names, places and organisations
# of one and several tokens, punctuation inside entities, a text ending inside one, line breaks, an empty text.
CANARY_TEXTS = (
    "John Smith flew from Paris to New York with Maria García on Monday, 3 March 2025.",
    "Send the contract to Dr. A. B. Jones, 12 Baker St., London, UK, or to Jean-Luc Picard in Lyon.",
    "Washington, D.C., is where Ngozi Okonjo-Iweala met the chief executive of Deutsche Bank AG.",
    "emails: a@b.com, c@d.org; names: Li Wei, Ana Lucía García, Tom O'Neil.\n\nBye, Kathryn Janeway.",
    "She works for the Bank of",
    "This letter is from Mr. John",
    "",
)


def entity_spans(doc: Any) -> list[tuple[int, int, str]]:
    return [(ent.start_char, ent.end_char, ent.label_) for ent in doc.ents]


def checked_fast_pipeline(
    nlp: Any, texts: tuple[str, ...] = CANARY_TEXTS
) -> tuple[Callable[[str], Any] | None, list[str]]:
    """:func:`fast_pipeline` (with :func:`use_openblas`) when it finds spaCy's own entities on every text of
    ``texts``: ``(run, [])``. Otherwise ``(None, what differed)``, and ``nlp`` is left computing as before."""
    stock = [entity_spans(nlp(text)) for text in texts]
    undo = use_openblas(nlp)
    try:
        run = fast_pipeline(nlp)
        fast = [entity_spans(run(text)) for text in texts]
    except Exception as err:
        undo()
        return None, [f"the fast NER failed: {type(err).__name__}: {err}"]
    differences = [f"{text!r}: spaCy {want}, fast {got}" for text, want, got in zip(texts, stock, fast) if want != got]
    if differences:
        undo()
        return None, differences
    return run, []
