"""spaCy's NER, same entities, about twice as fast on one core: BLAS through numpy, and the parse in chunks.

Two costs dominate spaCy 3.8's NER on CPU, and neither is the model's arithmetic:

1. **thinc's matrix products go through the ``blis`` wheel, which is built for the generic reference kernel**
   (``BLIS_ARCH_DEBUG=1`` prints ``selecting sub-configuration 'generic'`` on an AVX-512 CPU); numpy's bundled
   OpenBLAS picks its kernel at run time and is 3-4x faster on the same shapes. :class:`OpenBlasOps` is thinc's
   :class:`NumpyOps` with ``gemm`` done by ``numpy.matmul``: same results (float32, same shapes).
2. **The greedy transition loop pays for the GIL on every token.** The loop runs with the GIL released, and
   the state accessors it calls many times per token (``StateC.B_``) re-acquire it (the compiled 3.8 wheels
   do this), so most of the loop is GIL hand-offs. :func:`parse_entities` drives the same loop from Python
   with the GIL held (no hand-offs), and cuts the document into chunks at sentence punctuation that are
   parsed side by side, one batched step for all of them, so a 1 KB text takes ~30 steps instead of ~200.

Why the chunks give exactly the entities of the whole-document parse: the NER's state features are the
next token, the first token of the open entity and the token before the next one when an entity is open
(``StateC.set_context_tokens`` with ``nF == 3``), and which moves are valid depends on the same state. So
from any token where no entity is open, the greedy parse goes on the same way whatever came before. A chunk
starts at such a point (no entity open), and the chunk before it must reach it with no entity open too;
when it does not (an entity runs over the chunk's end), the earlier chunk carries on and the later chunk's
work is dropped. Tested against spaCy's own parse, entity for entity (tests/unit/serve/pii/test_fastner.py).

The chunking is used only where that argument holds: a greedy (``beam_width == 1``) ``EntityRecognizer``
with 3 state features; any other component runs as spaCy runs it.
"""

from __future__ import annotations

from typing import Any

import numpy

# Punctuation after which a chunk may start (tokens' text), and the shortest chunk in tokens. Short chunks
# mean fewer batched steps; too short and entities like "Washington, D.C." run over chunk ends (still exact,
# just less parallel).
CHUNK_AFTER = (".", "!", "?", ";", ":", ",")
MIN_CHUNK_TOKENS = 8


def _numpy_ops_class() -> type:
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

    return OpenBlasOps


_OPS: Any = None


def openblas_ops() -> Any:
    """The one :class:`OpenBlasOps` instance."""
    global _OPS
    if _OPS is None:
        _OPS = _numpy_ops_class()()
    return _OPS


def use_openblas(nlp: Any) -> None:
    """Every model node of ``nlp``'s components computes with :func:`openblas_ops` (CPU only)."""
    from thinc.api import NumpyOps

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
        return component.model.get_ref("lower").get_dim("nF") == 3
    except (KeyError, ValueError, AttributeError):
        return False


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


def parse_entities(ner: Any, doc: Any, min_tokens: int = MIN_CHUNK_TOKENS) -> Any:
    """Run the greedy NER ``ner`` (see :func:`chunkable`) over ``doc`` in chunks; sets ``doc.ents``."""
    from spacy.pipeline._parser_internals.stateclass import StateClass

    if len(doc) == 0:
        return doc
    starts = chunk_starts(doc, min_tokens)
    step_model = ner.model.predict([doc])
    states = []
    for start in starts:
        state = StateClass(doc)
        for _ in range(start):  # the "O" move: past tokens outside any entity, nothing recorded
            state.push()
            state.pop()
        states.append(state)
    ends = starts[1:] + [len(doc) + 1]
    following: list[int | None] = [*range(1, len(states)), None]
    kept = [True] * len(states)
    running = [index for index, state in enumerate(states) if not state.is_final()]
    try:
        while running:
            batch = [states[index] for index in running]
            ner.transition_states(batch, step_model.predict(batch))
            still = []
            for index in running:
                if not kept[index] or states[index].is_final():
                    continue
                if states[index].B(0) >= ends[index]:
                    if not states[index].entity_is_open():
                        continue  # reached the next chunk's start with no entity open: that chunk goes on
                    later = following[index]  # an entity runs over the end: carry on, drop the next chunk
                    assert later is not None  # the last chunk's end is past the document's end
                    kept[later] = False
                    ends[index], following[index] = ends[later], following[later]
                still.append(index)
            running = [index for index in still if kept[index]]
    finally:
        step_model.clear_memory()
    for index, state in enumerate(states):
        if kept[index]:
            ner.moves.set_annotations(state, doc)
    return doc


def run_pipeline(nlp: Any, text: str) -> Any:
    """``nlp(text)``, with every :func:`chunkable` NER run by :func:`parse_entities`."""
    doc = nlp.make_doc(text)
    for _, component in nlp.pipeline:
        if chunkable(component):
            parse_entities(component, doc)
            for hook in getattr(component, "postprocesses", ()):
                hook(doc)
        else:
            doc = component(doc)
    return doc
