"""The windowed phone recognizer finds exactly what Presidio's PhoneRecognizer finds, at the same offsets."""

from __future__ import annotations

import json

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from appliance.serve.pii.phone import PLUS_SIGNS, RegionMatcher, WindowedPhoneRecognizer, windows
from tests.helpers import ROOT

STOCK = PhoneRecognizer()
FAST = WindowedPhoneRecognizer.like(STOCK, None)


def found(recognizer: PhoneRecognizer, text: str) -> list[tuple[int, int, float]]:
    return sorted((r.start, r.end, r.score) for r in recognizer.analyze(text, ["PHONE_NUMBER"], None))


def test_windows_cover_digit_runs_with_margins() -> None:
    assert windows("no digits here") == []
    text = "a" * 50 + "call 212-555-1234" + "b" * 50
    ((start, end),) = windows(text)
    assert start == 55 - 24 and end == 67 + 24
    assert len(windows("1" + "x" * 100 + "2")) == 2


def test_same_results_as_presidio_on_the_labelled_sample() -> None:
    texts = [json.loads(line)["text"] for line in (ROOT / "scripts/data/pii_sample.jsonl").read_text().splitlines()]
    joined = " ".join(texts)
    for text in [*texts, joined[:4096], joined[4096:12288]]:
        assert found(FAST, text) == found(STOCK, text), text[:200]


# Whole numbers, short international ones ("+49 30 1234" is valid with 6 digits), prefixes ("00", "011"), and
# years / house numbers / dates next to them (candidates too short for a region, skipped before parsing).
PIECES = st.sampled_from(
    [
        "+1 (212) 555-1234",
        "212.555.1234",
        "06-82237745",
        "+41 53 147 37 99",
        "ext. 12",
        "650-752-7354x549",
        "07700 316 475",
        " ",
        "tel:",
        "Call ",
        "a",
        "-",
        "(",
        "9",
        "0",
        "+49 30 1234",
        "0049 30 12345",
        "011 44 20 7946 0958",
        "+",
        "00",
        "2019",
        "12/05/2020",
        " on 3 May, ",
        "No. 42",
        "+31 6 1234 5678",
        "1-800-555-0199",
        # the fewest digits of any valid number with its country code (6: Iran, Norway), with a
        # "+" and with an international call prefix instead
        "+98 9601",
        "+47 02000",
        "0047 02000",
        "00 98 9601",
        # Canada's 7-digit universal access numbers, which the US matcher finds too (country
        # code 1): the fewest digits of a region are those of its whole country code
        "310-1234",
        " 310 1234.",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join))
def test_same_results_on_generated_texts(text: str) -> None:
    assert found(FAST, text) == found(STOCK, text)


@pytest.mark.parametrize("region", STOCK.supported_regions)
@settings(max_examples=60, deadline=None)
@given(st.lists(PIECES, max_size=10).map("".join))
def test_each_region_matches_what_libphonenumber_matches(region: str, text: str) -> None:
    """Region by region (the recognizer's union would hide one region missing a number another finds)."""
    plus = not PLUS_SIGNS.isdisjoint(text)
    ours = [(m.start, m.end) for m in RegionMatcher(text, region, STOCK.leniency, plus)]
    assert ours == [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=STOCK.leniency)]


def test_a_region_finds_the_numbers_of_its_whole_country_code() -> None:
    for region in ("US", "CA"):
        found = [m.raw_string for m in RegionMatcher("Call 310-1234 now.", region, STOCK.leniency, False)]
        assert found == ["310-1234"], region
