"""PII_NER=gliner with real Presidio, real gliner and a randomly initialised GLiNER of the real architecture
(tiny_gliner.py): labels mapped, the threshold applied, spans valid and merged with the pattern recognizers,
masks restored through the bookend, and every way the model fails to load said with its setting. Random weights
give random spans: nothing here is about accuracy (docs/guides/pii.md: unmeasured until a GPU run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from appliance.serve.pii.gliner import (
    RECOGNIZER_NAME,
    GlinerOptions,
    GlinerUnavailable,
    load_recognizer,
    model_directory,
)
from appliance.serve.pii.gliner_fetch import sha256_of, write_manifest
from tests.unit.serve.pii.conftest import test_options
from tests.unit.serve.pii.test_bookend import make_gate, post
from tests.unit.serve.pii.tiny_gliner import build_tiny_gliner

TEXT = (
    "Dear Maria García, your parcel for 350 Fifth Avenue, New York went to David Johnson in London; "
    "write to anna.schmidt@example.de or call (212) 555-1234."
)
CHECKED = ("anna.schmidt@example.de", "555-1234")  # found by the pattern recognizers, whatever GLiNER says
LABELS = (("person", "PERSON"), ("city", "LOCATION"), ("street address", "LOCATION"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gliner(tmp_path_factory.mktemp("gliner") / "model")


def gliner_options(model: Path, **overrides: object) -> GlinerOptions:
    values: dict = {"model": str(model), "device": "cpu", "threshold": 0.0, "labels": LABELS, **overrides}
    return GlinerOptions(**values)


def raw_predictions(model: Path, labels: list[str], threshold: float) -> list[dict]:
    from gliner import GLiNER

    return GLiNER.from_pretrained(str(model), map_location="cpu").predict_entities(TEXT, labels, threshold=threshold)


def test_the_tiny_model_is_a_gliner_span_model_that_predicts(tiny_model: Path) -> None:
    config = json.loads((tiny_model / "gliner_config.json").read_text())
    assert config["span_mode"] == "markerV0" and config["encoder_config"]["model_type"] == "deberta-v2"
    predictions = raw_predictions(tiny_model, ["person", "city"], 0.0)
    assert predictions, "a model scoring every span must return some at threshold 0"
    for p in predictions:
        assert p["label"] in ("person", "city") and TEXT[p["start"] : p["end"]] == p["text"]


def test_labels_map_to_entity_types_and_the_threshold_is_the_models(tiny_model: Path) -> None:
    scores = sorted(p["score"] for p in raw_predictions(tiny_model, [label for label, _ in LABELS], 0.0))
    threshold = scores[len(scores) // 2]  # a real cut: some spans under it, some at or over it
    assert scores[0] < threshold
    expected = {
        (p["start"], p["end"], dict(LABELS)[p["label"]])
        for p in raw_predictions(tiny_model, [label for label, _ in LABELS], threshold)
    }
    # PII_SCORE_THRESHOLD 0.9 is over every random score: a GLiNER span passing its own threshold still counts
    recognizer = load_recognizer(gliner_options(tiny_model, threshold=threshold), LABELS, "en", 0.9)
    results = recognizer.analyze(TEXT, ["PERSON", "LOCATION", "EMAIL_ADDRESS"])
    assert {(r.start, r.end, r.entity_type) for r in results} == expected
    assert expected and all(r.score >= 0.9 for r in results)
    assert all(r.analysis_explanation.original_score >= threshold for r in results)
    assert recognizer.analyze(TEXT, ["EMAIL_ADDRESS"]) == []  # never asked for a type it has no label for


def test_analyzer_uses_gliner_not_spacy_for_names_and_places(tiny_model: Path) -> None:
    from appliance.serve.pii.engine import build_engines

    analyzer, _ = build_engines(test_options(gliner=gliner_options(tiny_model)))
    names = {type(r).__name__: r for r in analyzer.registry.recognizers}
    assert set(names["ApplianceGlinerRecognizer"].supported_entities) == {"PERSON", "LOCATION"}
    spacy = names.get("SpacyRecognizer")
    assert spacy is None or not {"PERSON", "LOCATION"} & set(spacy.supported_entities)

    results = analyzer.analyze(TEXT, language="en", entities=list(test_options().entities), score_threshold=0.5)
    spans = sorted((r.start, r.end) for r in results)
    assert all(0 <= s < e <= len(TEXT) for s, e in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "merged: no two results overlap"
    recognizers = {r.recognition_metadata.get("recognizer_name") for r in results}
    assert RECOGNIZER_NAME in recognizers, "GLiNER's spans take part at threshold 0"
    found = {r.entity_type: TEXT[r.start : r.end] for r in results if r.entity_type not in ("PERSON", "LOCATION")}
    assert found["EMAIL_ADDRESS"] == "anna.schmidt@example.de" and "555-1234" in found["PHONE_NUMBER"]
    spacy_ner = [r for r in results if r.recognition_metadata.get("recognizer_name") == "SpacyRecognizer"]
    assert not [r for r in spacy_ner if r.entity_type in ("PERSON", "LOCATION")]


def test_mask_and_restore_through_the_bookend(tmp_path: Path, tiny_model: Path) -> None:
    from appliance.serve.pii.service import PIIService

    service = PIIService(test_options(gliner=gliner_options(tiny_model)), ray_metrics=False)
    gate, engine, metrics, _ = make_gate(tmp_path, service.mask)
    status, _, body = post(gate, "/v1/completions", {"model": "a", "prompt": TEXT})
    assert status == 200, body
    seen = json.loads(engine.seen[0])["prompt"]
    for value in CHECKED:
        assert value not in seen
    assert "<PERSON_" in seen or "<LOCATION_" in seen  # GLiNER's types became placeholders
    assert json.loads(body)["choices"][0]["text"] == TEXT  # every placeholder put back
    assert not metrics.failures


def test_spacy_stays_the_default() -> None:
    from appliance.config.settings import Settings
    from appliance.serve.pii.engine import options_from_settings

    assert options_from_settings(Settings()).gliner is None
    options = options_from_settings(
        Settings(
            PII_NER="gliner",
            PII_GLINER_MODEL="/models/g",
            PII_GLINER_DEVICE="cpu",
            PII_GLINER_LABELS="person=PERSON,street=LOCATION",
        )
    )
    assert options.gliner == GlinerOptions(
        model="/models/g", device="cpu", labels=(("person", "PERSON"), ("street", "LOCATION"))
    )


# --- failures to load: each says which setting to change -------------------------------------------------------


def test_missing_directory_names_the_model_setting(tmp_path: Path) -> None:
    from appliance.serve.pii.service import PIIService

    with pytest.raises(GlinerUnavailable, match="PII_GLINER_MODEL=.*not a GLiNER model directory"):
        PIIService(test_options(gliner=gliner_options(tmp_path / "nothing")), ray_metrics=False)


def test_cuda_without_a_gpu_names_the_device_setting(tiny_model: Path) -> None:
    import torch

    assert not torch.cuda.is_available(), "this test expects a machine without a GPU"
    with pytest.raises(GlinerUnavailable, match="PII_GLINER_DEVICE=cuda"):
        load_recognizer(gliner_options(tiny_model, device="cuda"), LABELS, "en", 0.5)


def test_weights_that_do_not_load_name_the_model_setting(tmp_path: Path, tiny_model: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(GlinerUnavailable, match=r"PII_GLINER_MODEL: the GLiNER model in .* did not load"):
        load_recognizer(gliner_options(broken), LABELS, "en", 0.5)


def test_wrong_digest_names_the_digest_setting(tiny_model: Path) -> None:
    assert model_directory(gliner_options(tiny_model, sha256=sha256_of(tiny_model / "model.safetensors")))
    with pytest.raises(GlinerUnavailable, match="PII_GLINER_SHA256: .* has SHA-256 [0-9a-f]{64}, expected 0{64}"):
        model_directory(gliner_options(tiny_model, sha256="0" * 64))


def test_a_directory_that_would_download_its_encoder_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(tiny_model, partial)
    (partial / "tokenizer_config.json").unlink()
    config = json.loads((partial / "gliner_config.json").read_text())
    (partial / "gliner_config.json").write_text(json.dumps({**config, "model_name": "microsoft/mdeberta-v3-base"}))
    with pytest.raises(GlinerUnavailable, match="would download microsoft/mdeberta-v3-base at load"):
        model_directory(gliner_options(partial))


def test_the_image_model_must_be_the_one_pinned(tmp_path: Path, tiny_model: Path) -> None:
    image_dir = tmp_path / "image"
    digest = sha256_of(tiny_model / "model.safetensors")
    options = GlinerOptions(model="org/gliner-pii", revision="a" * 40, sha256=digest, image_dir=str(image_dir))
    shutil.copytree(tiny_model, image_dir)
    with pytest.raises(GlinerUnavailable, match="the serve image carries no GLiNER model.*never downloaded"):
        model_directory(options)
    write_manifest(image_dir, "org/gliner-pii", "b" * 40, digest)
    with pytest.raises(GlinerUnavailable, match=f"PII_GLINER_REVISION={'a' * 40}.*carries org/gliner-pii@{'b' * 40}"):
        model_directory(options)
    write_manifest(image_dir, "org/gliner-pii", "a" * 40, digest)
    assert model_directory(options) == image_dir
    (image_dir / "model.safetensors").write_bytes(b"changed after the build")
    with pytest.raises(GlinerUnavailable, match="PII_GLINER_SHA256"):
        model_directory(options)
