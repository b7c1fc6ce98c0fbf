"""doctor's pii-model check: PII_SPACY_MODEL against the label of the built serve image (no Docker needed)."""

from __future__ import annotations

import pytest

from appliance.doctor import probes
from appliance.doctor.checks.pii_model import PiiModel
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Level
from appliance.stack.pii_model import DEFAULT_SPACY_MODEL, LOCAL_SPACY_MODEL, SPACY_MODEL_LABEL


class _Engine:
    def __init__(self, labels: dict[str, str] | None) -> None:
        self.labels = labels

    def __enter__(self) -> _Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.mark.parametrize(
    ("labels", "configured", "level"),
    [
        ({SPACY_MODEL_LABEL: DEFAULT_SPACY_MODEL}, DEFAULT_SPACY_MODEL, Level.OK),
        ({SPACY_MODEL_LABEL: LOCAL_SPACY_MODEL}, DEFAULT_SPACY_MODEL, Level.OK),  # a local image, default setting
        ({SPACY_MODEL_LABEL: LOCAL_SPACY_MODEL}, "en_core_web_md", Level.ERROR),
        ({SPACY_MODEL_LABEL: DEFAULT_SPACY_MODEL}, "en_core_web_md", Level.ERROR),
        ({}, DEFAULT_SPACY_MODEL, Level.WARNING),  # built before the label: up rebuilds
        (None, DEFAULT_SPACY_MODEL, Level.INFO),  # not built yet
    ],
)
def test_doctor_compares_the_setting_with_the_image(
    make_ctx,
    monkeypatch: pytest.MonkeyPatch,
    labels: dict[str, str] | None,
    configured: str,
    level: Level,
) -> None:
    import appliance.docker.images as images

    ctx: DoctorContext = make_ctx(PII_ENABLED="true", PII_SPACY_MODEL=configured)
    monkeypatch.setattr(probes, "open_engine", lambda host, timeout=2.0: _Engine(labels))
    monkeypatch.setattr(images, "image_labels", lambda engine, image: engine.labels)
    check = PiiModel()
    assert check.applies(ctx)
    (finding,) = check.run(ctx)
    assert finding.level is level, finding
    assert not PiiModel().applies(make_ctx(PII_ENABLED="false"))
