"""doctor's pii-model check with PII_NER=gliner: the image's appliance.gliner-model label against the settings."""

from __future__ import annotations

import pytest

from tests.unit.stack.test_gliner_model import COMMIT, PINNED, REPO


def test_doctor_reports_a_missing_gliner_model(make_ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    import appliance.docker.images as images
    from appliance.doctor import probes
    from appliance.doctor.checks.pii_model import PiiModel
    from appliance.doctor.finding import Level
    from appliance.stack.pii_model import DEFAULT_SPACY_MODEL, GLINER_MODEL_LABEL, SPACY_MODEL_LABEL
    from tests.unit.doctor.test_pii_model_check import _Engine

    ctx = make_ctx(gpu_count=1, **PINNED)
    for label, level in (("", Level.ERROR), (f"{REPO}@{COMMIT}", Level.OK)):
        labels = {SPACY_MODEL_LABEL: DEFAULT_SPACY_MODEL, GLINER_MODEL_LABEL: label}
        monkeypatch.setattr(probes, "open_engine", lambda host, timeout=2.0, labels=labels: _Engine(labels))
        monkeypatch.setattr(images, "image_labels", lambda engine, image: engine.labels)
        (finding,) = PiiModel().run(ctx)
        assert finding.level is level, finding
