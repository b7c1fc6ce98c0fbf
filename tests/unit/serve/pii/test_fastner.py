"""The fast NER finds exactly the entities spaCy's own NER finds: same spans, same labels, on every text."""

from __future__ import annotations

import json
import random

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.serve.pii.engine import UNUSED_SPACY_COMPONENTS
from appliance.serve.pii.fastner import (
    ArrayNer,
    _Tok2Vec,
    array_parsable,
    fast_pipeline,
    openblas_ops,
    use_openblas,
)
from tests.helpers import ROOT
from tests.unit.serve.pii.conftest import TEST_SPACY_MODEL

SENTENCES = [json.loads(line)["text"] for line in (ROOT / "scripts/data/pii_sample.jsonl").read_text().splitlines()]
TRICKY = [
    "",
    " ",
    "Hello",
    "\n\n",
    "Washington, D.C., is where John Smith, Jr. lives; Dr. A. B. Jones, Ph.D., visits Paris, France.",
    "Send it to Mary-Ann O'Neil, 12 Baker St., London, UK. Or: Jean-Luc Picard! Or? Kathryn Janeway.",
    "emails: a@b.com, c@d.org; names: Li Wei, Ana Lucía García, Ngozi Okonjo-Iweala.\n\nBye, Tom.",
    # ending inside what would be an entity: the last token must close it (I is not valid there)
    "She works for the Bank of",
    "Meet me in New",
    "This letter is from Mr. John",
    "Please forward it to Maria del Carmen Fernández de la",
]


@pytest.fixture(scope="module")
def pipelines():
    import spacy

    if not spacy.util.is_package(TEST_SPACY_MODEL):
        pytest.fail(f"the spaCy model package {TEST_SPACY_MODEL} is missing; `make test` installs it", pytrace=False)
    stock = spacy.load(TEST_SPACY_MODEL, exclude=list(UNUSED_SPACY_COMPONENTS))
    fast = spacy.load(TEST_SPACY_MODEL, exclude=list(UNUSED_SPACY_COMPONENTS))
    use_openblas(fast)
    return stock, fast


def entities(doc) -> list[tuple[int, int, str]]:  # type: ignore[no-untyped-def]
    return [(ent.start_char, ent.end_char, ent.label_) for ent in doc.ents]


def corpus() -> list[str]:
    rng = random.Random(7)
    joined = " ".join(SENTENCES)
    texts = [*SENTENCES, *TRICKY, joined[:1024], joined[1024:5120]]
    texts += [rng.choice([" ", "\n", "  ", ", "]).join(rng.sample(SENTENCES, rng.randint(2, 10))) for _ in range(60)]
    return texts


def test_same_entities_as_spacy_everywhere(pipelines) -> None:
    stock, fast = pipelines
    run = fast_pipeline(fast)
    for text in corpus():
        assert entities(run(text)) == entities(stock(text)), text[:200]


def test_the_corpus_has_entities_of_several_tokens_and_tokens_inside_them_that_begin_one(pipelines) -> None:
    """The continuation path really runs, and so does a token's own move read where the walk never reaches:
    a token inside an entity that would begin (or be) an entity of its own if it came first."""
    stock, _ = pipelines
    long_entities = inner_starts = 0
    for text in corpus():
        expected = stock(text)
        long_entities += sum(1 for ent in expected.ents if len(ent) >= 3)
        for ent in expected.ents:
            for token in expected[ent.start + 1 : ent.end]:
                if inner_starts < 5 and not token.is_space:
                    alone = stock(text[token.idx :])
                    inner_starts += bool(alone.ents) and alone.ents[0].start == 0
        if long_entities >= 10 and inner_starts >= 5:
            return
    pytest.fail(f"{long_entities} entities of 3+ tokens, {inner_starts} inner tokens that begin one alone")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(SENTENCES[:80] + TRICKY[4:]), min_size=1, max_size=8),
    st.sampled_from([" ", "\n", ", ", ". ", "", "\n\n", " and "]),
)
def test_same_entities_on_generated_texts(pipelines, pieces: list[str], separator: str) -> None:
    stock, fast = pipelines
    text = separator.join(pieces)
    doc = fast.make_doc(text)
    ArrayNer(fast.get_pipe("ner")).parse(doc)
    assert entities(doc) == entities(stock(text))


def test_only_a_greedy_ner_is_run_by_arrays(pipelines) -> None:
    _, fast = pipelines
    assert [name for name, component in fast.pipeline if array_parsable(component)] == ["ner"]
    assert not array_parsable(object())


@pytest.mark.parametrize(("trans1", "trans2"), [(False, False), (True, False), (False, True), (True, True)])
def test_openblas_gemm_matches_thinc(trans1: bool, trans2: bool) -> None:
    from thinc.api import NumpyOps

    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((7, 5) if not trans1 else (5, 7)).astype("f")
    y = rng.standard_normal((5, 3) if not trans2 else (3, 5)).astype("f")
    expected = NumpyOps().gemm(x, y, trans1=trans1, trans2=trans2)
    got = openblas_ops().gemm(x, y, trans1=trans1, trans2=trans2)
    assert got.dtype == numpy.float32 and got.shape == (7, 3)
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    out = numpy.zeros((7, 3), dtype="f")
    assert openblas_ops().gemm(x, y, out=out, trans1=trans1, trans2=trans2) is out
    numpy.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_preset_entities_are_left_to_spacy(pipelines) -> None:
    """A document that already has entities takes spaCy's own parse (which keeps the preset ones)."""
    from spacy.tokens import Span

    stock, fast = pipelines
    text = "Ann Lee met Bob Stone in Paris, then flew to Rome with Carla Diaz."
    expected, doc = stock.make_doc(text), fast.make_doc(text)
    expected.ents = [Span(expected, 3, 5, label="ORG")]
    doc.ents = [Span(doc, 3, 5, label="ORG")]
    stock.get_pipe("ner")(expected)
    ArrayNer(fast.get_pipe("ner")).parse(doc)
    assert entities(doc) == entities(expected)
    assert ("Bob Stone", "ORG") in [(ent.text, ent.label_) for ent in doc.ents]


def test_tok2vec_vectors_are_thincs_bit_for_bit(pipelines) -> None:
    _, fast = pipelines
    model = fast.get_pipe("ner").model.get_ref("tok2vec")
    ours = _Tok2Vec(model)
    assert len(ours.embeds) == 4 and len(ours.blocks) == 4 and ours.pad == 4
    for text in corpus()[::7]:
        doc = fast.make_doc(text)
        if len(doc):
            numpy.testing.assert_array_equal(ours(doc), model.predict([doc]))


def random_ner(tok2vec: dict, use_upper: bool = True):  # type: ignore[no-untyped-def]
    """A blank English pipeline with an NER of random weights: a different shape from the packaged model, and
    far more entities (random weights make entities everywhere, of every length). A tok2vec with static vectors
    gets a vectors table of 20 dimensions for the words of the first sentences (others have none)."""
    import spacy

    spacy.util.fix_random_seed(3)
    nlp = spacy.blank("en")
    if tok2vec.get("embed", {}).get("include_static_vectors"):
        from spacy.vectors import Vectors

        words = sorted({token.orth_ for token in nlp.make_doc(" ".join(SENTENCES[:40]))})
        table = numpy.random.default_rng(5).normal(0, 1, (len(words), 20)).astype("f")  # no spare (zero) rows
        keys = [nlp.vocab.strings.add(word) for word in words]
        nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=table, keys=keys)
    model = {
        "@architectures": "spacy.TransitionBasedParser.v2",
        "state_type": "ner",
        "extra_state_tokens": False,
        "hidden_width": 24,
        "maxout_pieces": 2,
        "use_upper": use_upper,
        "tok2vec": tok2vec,
    }
    ner = nlp.add_pipe("ner", config={"model": model})
    for label in ("PERSON", "GPE", "ORG", "DATE"):
        ner.add_label(label)
    nlp.initialize()
    rng = numpy.random.default_rng(3)
    for node in ner.model.walk():  # spaCy starts the upper layer at zeros: every score equal, no entities
        for name in node.param_names:
            if node.has_param(name):
                value = node.get_param(name)
                node.set_param(name, rng.normal(0, 1, value.shape).astype(value.dtype))
    # scores near a bias per move kind (B 1, I 1.2, U 0.5, others 0) with a little noise from the weights:
    # entities of one, two and many tokens, all through the texts
    if use_upper:
        upper = ner.model.get_ref("upper")
        shift = numpy.array(
            [
                {"B": 1.0, "I": 1.2, "U": 0.5}.get(ner.moves.get_class_name(index)[0], 0.0)
                for index in range(ner.moves.n_moves)
            ],
            dtype="f",
        )
        upper.set_param("W", upper.get_param("W") * 0.001)
        upper.set_param("b", shift + upper.get_param("b") * 0.001)
    use_openblas(nlp)
    return nlp


MAXOUT_CNN = {
    "@architectures": "spacy.HashEmbedCNN.v2",
    "pretrained_vectors": None,
    "width": 32,
    "depth": 2,
    "embed_size": 300,
    "window_size": 1,
    "maxout_pieces": 2,
    "subword_features": False,
}
MISH_CNN = {
    "@architectures": "spacy.Tok2Vec.v2",
    "embed": {
        "@architectures": "spacy.MultiHashEmbed.v2",
        "width": 32,
        "attrs": ["NORM", "SHAPE"],
        "rows": [300, 100],
        "include_static_vectors": False,
    },
    "encode": {"@architectures": "spacy.MishWindowEncoder.v2", "width": 32, "window_size": 1, "depth": 2},
}


STATIC_CNN = {
    "@architectures": "spacy.Tok2Vec.v2",
    "embed": {
        "@architectures": "spacy.MultiHashEmbed.v2",
        "width": 32,
        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE", "SPACY", "IS_SPACE"],
        "rows": [300, 100, 100, 100, 50, 50],
        "include_static_vectors": True,
    },
    "encode": {
        "@architectures": "spacy.MaxoutWindowEncoder.v2",
        "width": 32,
        "window_size": 1,
        "maxout_pieces": 3,
        "depth": 3,
    },
}


@pytest.mark.parametrize(
    ("tok2vec", "ours"),
    [(MAXOUT_CNN, True), (STATIC_CNN, True), (MISH_CNN, False)],
    ids=["maxout", "static-vectors", "mish"],
)
def test_same_entities_as_spacy_with_other_ner_shapes(tok2vec: dict, ours: bool) -> None:
    """Tok2vecs :class:`_Tok2Vec` knows (one embedding, depth 2, 2 maxout pieces; six embeddings with static
    vectors as in the md / lg pipelines) and one it does not (Mish: thinc's own ``predict``): bit for bit
    thinc's vectors, and the same entities as spaCy's parse on texts where random weights find many."""
    nlp = random_ner(tok2vec)
    component = nlp.get_pipe("ner")
    assert array_parsable(component)
    ner = ArrayNer(component)
    assert isinstance(ner.tok2vec, _Tok2Vec) is ours
    model = component.model.get_ref("tok2vec")
    for text in corpus()[::25]:
        doc = nlp.make_doc(text)
        if len(doc):
            numpy.testing.assert_array_equal(ner.tok2vec(doc), model.predict([doc]))
    run = fast_pipeline(nlp)
    lengths: list[int] = []
    for text in corpus()[::3]:
        expected = nlp(text)
        lengths += [len(ent) for ent in expected.ents]
        assert entities(run(text)) == entities(expected), text[:200]
    assert sum(length == 1 for length in lengths) >= 20 and sum(length >= 3 for length in lengths) >= 50


def test_a_ner_without_upper_layer_is_left_to_spacy() -> None:
    nlp = random_ner(MAXOUT_CNN, use_upper=False)
    assert not array_parsable(nlp.get_pipe("ner"))
    run = fast_pipeline(nlp)
    text = SENTENCES[0]
    assert entities(run(text)) == entities(nlp(text))
