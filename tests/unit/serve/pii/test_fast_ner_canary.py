"""The fast NER proves itself at load: on the canary texts it must find spaCy's own entities, else the replica
runs spaCy's NER, says so in a warning and in the pii_fast_ner_active metric, and masks the same way."""

from __future__ import annotations

import logging

import pytest

from appliance.serve.pii.engine import UNUSED_SPACY_COMPONENTS, build_engines
from appliance.serve.pii.fastner import CANARY_TEXTS, ArrayNer, OpenBlasOps, checked_fast_pipeline, entity_spans
from tests.unit.serve.pii.conftest import TEST_SPACY_MODEL, test_options


@pytest.fixture
def nlp():
    import spacy

    if not spacy.util.is_package(TEST_SPACY_MODEL):
        pytest.fail(f"the spaCy model package {TEST_SPACY_MODEL} is missing; `make test` installs it", pytrace=False)
    return spacy.load(TEST_SPACY_MODEL, exclude=list(UNUSED_SPACY_COMPONENTS))


def _openblas_nodes(nlp) -> int:  # type: ignore[no-untyped-def]
    return sum(
        isinstance(node.ops, OpenBlasOps)
        for _, c in nlp.pipeline
        if hasattr(getattr(c, "model", None), "walk")
        for node in c.model.walk()
    )


ARRAY_PARSE = ArrayNer.parse


def _wrong_parse(self, doc):  # type: ignore[no-untyped-def]
    """An array parse that has drifted from spaCy's: it loses the last entity of every text."""
    doc = ARRAY_PARSE(self, doc)
    doc.set_ents(list(doc.ents)[:-1], default="outside")
    return doc


def test_the_canaries_have_entities_and_the_fast_ner_passes(nlp) -> None:
    assert sum(len(entity_spans(nlp(text))) for text in CANARY_TEXTS) >= 8
    run, differences = checked_fast_pipeline(nlp)
    assert run is not None and differences == []
    assert _openblas_nodes(nlp) > 0


def test_a_difference_falls_back_to_spacy(nlp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ArrayNer, "parse", _wrong_parse)
    run, differences = checked_fast_pipeline(nlp)
    assert run is None and differences and all("spaCy [" in d for d in differences)
    assert _openblas_nodes(nlp) == 0  # left computing as spaCy does


def test_a_failing_fast_ner_falls_back_to_spacy(nlp, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, doc):  # type: ignore[no-untyped-def]
        raise IndexError("a shape this code was not written for")

    monkeypatch.setattr(ArrayNer, "parse", broken)
    run, differences = checked_fast_pipeline(nlp)
    assert run is None and differences == ["the fast NER failed: IndexError: a shape this code was not written for"]


def test_the_engine_and_the_service_report_the_fallback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ArrayNer, "parse", _wrong_parse)
    with caplog.at_level(logging.WARNING, logger="appliance.serve.pii.engine"):
        analyzer, _ = build_engines(test_options())
    assert analyzer.nlp_engine.fast_ner_active is False
    assert any("runs spaCy's NER" in r.getMessage() for r in caplog.records)
    found = analyzer.analyze("Please call John Smith in Paris tomorrow.", language="en", entities=["PERSON"])
    assert found  # the stock parse masks

    recorded: list[bool] = []

    class Recording:
        def fast_ner(self, active: bool) -> None:
            recorded.append(active)

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return lambda *a, **k: None

    from appliance.serve.pii import service

    monkeypatch.setattr(service, "NoMetrics", Recording)
    service.PIIService(test_options(), ray_metrics=False)
    assert recorded == [False]
    monkeypatch.undo()
    monkeypatch.setattr(service, "NoMetrics", Recording)
    service.PIIService(test_options(), ray_metrics=False)
    assert recorded == [False, True]
