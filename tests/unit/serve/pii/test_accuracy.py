"""scripts/test_pii.py: the scoring (pure) and a run over the committed labelled sample with the real analyzer."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.helpers import ROOT
from tests.unit.serve.pii.conftest import TEST_SPACY_MODEL


def _load_script():
    """scripts/test_pii.py under a name of its own (tests/e2e/test_pii.py is imported as ``test_pii``)."""
    spec = importlib.util.spec_from_file_location("pii_accuracy_script", ROOT / "scripts" / "test_pii.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


test_pii = _load_script()


def test_overlap_scoring_per_entity() -> None:
    scores: dict[str, test_pii.Score] = {}
    gold = [(0, 5, "PERSON"), (10, 20, "EMAIL_ADDRESS"), (30, 35, "PERSON")]
    predicted = [(1, 4, "PERSON"), (10, 20, "PHONE_NUMBER"), (40, 45, "PERSON"), (50, 55, "URL")]
    test_pii.score(gold, predicted, {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER"}, scores)
    assert (scores["PERSON"].tp, scores["PERSON"].fp, scores["PERSON"].fn) == (1, 1, 1)
    assert (scores["EMAIL_ADDRESS"].tp, scores["EMAIL_ADDRESS"].fn) == (0, 1)
    assert scores["PHONE_NUMBER"].fp == 1 and "URL" not in scores
    assert scores["PERSON"].f() == pytest.approx(0.5)


def test_sample_is_small_labelled_and_consistent() -> None:
    lines = test_pii.DATA.read_text(encoding="utf-8").splitlines()
    assert 100 <= len(lines) <= 300
    for line in lines:
        record = json.loads(line)
        for span in record["spans"]:
            assert 0 <= span["start"] < span["end"] <= len(record["text"])


def test_the_script_scores_the_sample(capsys: pytest.CaptureFixture[str], pii_service) -> None:
    assert test_pii.main(["--model", TEST_SPACY_MODEL, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["EMAIL_ADDRESS"]["recall"] == 1.0 and figures["CREDIT_CARD"]["precision"] == 1.0
    assert figures["overall"]["support"] > 400
    assert figures["overall"]["recall"] >= 0.45, figures["overall"]  # the tuned set-up's measured 0.473
    assert figures["PHONE_NUMBER"]["recall"] >= 0.25, figures["PHONE_NUMBER"]  # stock Presidio: 0.04


def test_missing_data_is_a_usage_error(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert test_pii.main(["--data", str(tmp_path / "none.jsonl")]) == 2
    assert "no labelled data" in capsys.readouterr().err
