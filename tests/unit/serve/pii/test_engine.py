"""Real Presidio (small spaCy model): masking across a whole request, offline, and the service's contract."""

from __future__ import annotations

import asyncio
import socket

import pytest

from appliance.serve.pii.engine import PiiModelMissing, build_engines, use_bundled_suffix_list
from appliance.serve.pii.restore import Restorer
from tests.unit.serve.pii.conftest import test_options

TEXTS = [
    "You are the assistant of David Johnson.",
    "Hi, I am David Johnson, mail david.johnson@example.com, my phone number is (212) 555-1234.",
    "Charge my card 4095-2609-9393-4932, not the one of Maria Garcia.",
    "Send it to david.johnson@example.com please.",
]
SECRETS = ["David Johnson", "david.johnson@example.com", "(212) 555-1234", "4095-2609-9393-4932", "Maria Garcia"]


def test_values_masked_consistently_across_texts_and_restored(pii_service) -> None:
    result = asyncio.run(pii_service.mask(TEXTS))
    masked = result["texts"]
    for text in masked:
        for secret in SECRETS:
            assert secret not in text, (secret, text)
    person = next(t for t, v in result["originals"].items() if v == "David Johnson")
    email = next(t for t, v in result["originals"].items() if v == "david.johnson@example.com")
    assert person in masked[0] and person in masked[1]
    assert email in masked[1] and email in masked[3]
    assert len(set(result["originals"].values())) == len(result["originals"])
    for kind in ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"):
        assert result["counts"].get(kind), (kind, result["counts"])
    restorer = Restorer(result["originals"])
    assert [restorer.restore(t) for t in masked] == TEXTS


def test_text_without_personal_data_is_unchanged(pii_service) -> None:
    text = "Explain how photosynthesis works in three sentences."
    assert asyncio.run(pii_service.mask([text]))["texts"] == [text]


def test_repeated_turns_keep_their_placeholders(pii_service) -> None:
    turn = ["My name is Maria Garcia.", "Nice to meet you, Maria Garcia.", "Write to Maria Garcia again."]
    result = asyncio.run(pii_service.mask(turn))
    assert len(result["originals"]) == 1
    assert all("<PERSON_1>" in t for t in result["texts"])


def test_a_missing_spacy_model_is_an_error_not_a_download() -> None:
    with pytest.raises(PiiModelMissing, match="not-a-spacy-model"):
        build_engines(test_options(spacy_model="not-a-spacy-model"))


def test_email_recognizer_works_without_network(pii_service, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access at run time")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    use_bundled_suffix_list()
    result = asyncio.run(pii_service.mask(["write to someone@university.ac.uk today"]))
    assert "someone@university.ac.uk" not in result["texts"][0]


def test_nlp_artifacts_are_what_presidio_itself_makes_of_the_doc(pii_service) -> None:
    """The engine's own artifact builder (keywords from the tokens' flags) against Presidio's, field by field,
    on the labelled sample's texts (their context words decide scores: "phone", "card", "call me")."""
    import json

    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    from tests.helpers import ROOT

    engine = pii_service._analyzer.nlp_engine
    lines = (ROOT / "scripts/data/pii_sample.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines] + ["", "Call me: +1 212 555 1234, or be there. It's I."]
    keywords = 0
    for text in texts:
        doc = engine.run(text)
        ours = engine._doc_to_nlp_artifact(doc, "en")
        theirs = SpacyNlpEngine._doc_to_nlp_artifact(engine, doc, "en")
        assert ours.keywords == theirs.keywords, text
        assert (ours.lemmas, ours.tokens_indices, ours.scores) == (theirs.lemmas, theirs.tokens_indices, theirs.scores)
        assert list(ours.entities) == list(theirs.entities) and ours.tokens is theirs.tokens
        keywords += len(ours.keywords)
    assert keywords > 1000
