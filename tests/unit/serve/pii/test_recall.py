"""The recall recognizers (places, names, cards, cued phones) and the merge, with the real analyzer (small
spaCy model), plus the per-type recall floors on the committed sample (issue #19)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
from presidio_analyzer import RecognizerResult

from appliance.serve.pii.cards import CardRecognizer, luhn
from appliance.serve.pii.merge import resolve
from appliance.serve.pii.phone import CuedPhoneRecognizer
from tests.helpers import ROOT
from tests.unit.serve.pii.conftest import TEST_SPACY_MODEL


def found(pii_service, text: str) -> list[tuple[str, str]]:
    """(type, value) of every final result, in text order."""
    analyzer = pii_service._analyzer
    results = analyzer.analyze(text, language="en", entities=list(pii_service.options.entities), score_threshold=0.5)
    return [(r.entity_type, text[r.start : r.end]) for r in sorted(results, key=lambda r: r.start)]


def values(pii_service, text: str, kind: str) -> list[str]:
    return [value for entity, value in found(pii_service, text) if entity == kind]


# --- addresses: one placeholder per address ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "Ship it to 1234 Maple Avenue, Apt 5B, Springfield, IL 62704 please.",
            "1234 Maple Avenue, Apt 5B, Springfield, IL 62704",
        ),
        ("Flat 3, 27 Mill Lane\nLeeds LS6 2AB", "Flat 3, 27 Mill Lane\nLeeds LS6 2AB"),
        ("Meine Adresse: Lindenstraße 14, 10969 Berlin.", "Lindenstraße 14, 10969 Berlin"),
        ("Livraison au 12 rue des Lilas, 69003 Lyon", "12 rue des Lilas, 69003 Lyon"),
        ("Envíelo a Calle de Alcalá 45, 28014 Madrid", "Calle de Alcalá 45, 28014 Madrid"),
        ("Spedire a Via Garibaldi 21, 20121 Milano", "Via Garibaldi 21, 20121 Milano"),
        ("Keizersgracht 123\n1015 CJ Amsterdam", "Keizersgracht 123\n1015 CJ Amsterdam"),
        ("Send the forms to P.O. Box 4417, Boise, ID 83702.", "P.O. Box 4417, Boise, ID 83702"),
        ("PSC 1234, Box 5678\nAPO AE 09012", "PSC 1234, Box 5678\nAPO AE 09012"),
    ],
)
def test_an_address_is_one_location(pii_service, text: str, address: str) -> None:
    assert values(pii_service, text, "LOCATION") == [address]


def test_places_from_the_gazetteer_and_ambiguous_words(pii_service) -> None:
    assert values(pii_service, "We are opening offices in Kraków and Nairobi next year.", "LOCATION") == [
        "Kraków",
        "Nairobi",
    ]
    # a place that is also a common word or a first name needs a preposition of place or an address
    assert values(pii_service, "May I reset the Mobile app?", "LOCATION") == []
    assert "Mobile" in values(pii_service, "She moved to Mobile last spring.", "LOCATION")


def test_small_towns_only_where_a_place_is_said_to_follow(pii_service) -> None:
    # GeoNames' places of 1,000-15,000 people: after "in", "from"... or beside an address, never alone
    assert values(pii_service, "Our guide is based in Grindelwald until June.", "LOCATION") == ["Grindelwald"]
    assert values(pii_service, "Vernazza, Hauptstrasse 12", "LOCATION") != []
    assert values(pii_service, "The Lauterbrunnen package is sold out.", "LOCATION") == []


def test_months_are_dates_not_towns(pii_service) -> None:
    # March (Cambridgeshire) is a town of the gazetteer: "in March" is a date unless an address is beside it
    assert values(pii_service, "We met in March and again on Sunday.", "LOCATION") == []


def test_numbers_that_are_not_next_to_a_place_are_not_postcodes(pii_service) -> None:
    text = "Order 48213 shipped 12 units, invoice 90210 is paid."
    assert values(pii_service, text, "LOCATION") == []


# --- names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Dear Dr. Okonkwo,\nthanks for the call.", "Okonkwo"),
        ("Hi, my name is Ngozi Adeyemi and I need help.", "Ngozi Adeyemi"),
        ("Thanks for your patience.\n\nBest regards,\nJoaquin Navarro", "Joaquin Navarro"),
        ("Please ask Mr Lindqvist to call back.", "Lindqvist"),
        ("The contract was signed by Astrid Johansson yesterday.", "Astrid Johansson"),
        # two name-like words around an initial, neither in the name lists
        ("The form was returned by Quillane R Abernathwy on Friday.", "Quillane R Abernathwy"),
        # a listed first name opening a sentence, a lower-case word after it
        ("Beatrix is handling your refund now.", "Beatrix"),
    ],
)
def test_names_after_titles_cues_and_from_the_name_lists(pii_service, text: str, name: str) -> None:
    assert any(name in value for value in values(pii_service, text, "PERSON")), found(pii_service, text)


def test_words_that_look_like_names_are_not(pii_service) -> None:
    for text in (
        "Dear Customer, your order is ready.",
        "It serves great Danish food.",
        "I DON'T KNOW WHAT TO PRESS NEXT",
        "Bot: How can I help?",
    ):
        assert values(pii_service, text, "PERSON") == [], text


# --- cards and phones ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    ["2221 0000 0000 0009", "2720-9900-0000-0007", "4111 1111 1111 1111 003", "3782 822463 10005", "5555555555554444"],
)
def test_cards_presidio_misses(card: str) -> None:
    assert luhn(card.replace(" ", "").replace("-", ""))
    text = f"charge {card} please"
    results = CardRecognizer().analyze(text, ["CREDIT_CARD"])
    assert [(r.start, r.end) for r in results] == [(7, 7 + len(card))]


def test_card_candidates_that_fail_the_checks_are_not_cards() -> None:
    recognizer = CardRecognizer()
    for text in ("charge 4111 1111 1111 1112", "call +4111111111111111", "id 9111111111111111 ok"):
        assert recognizer.analyze(text, ["CREDIT_CARD"]) == [], text


def test_phone_numbers_after_a_phone_word() -> None:
    recognizer = CuedPhoneRecognizer()
    for text, number in (
        ("Can someone call me on 76 177 296?", "76 177 296"),
        ("Phone:\n439 4166", "439 4166"),
        ("mobile: +44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
    ):
        assert [text[r.start : r.end] for r in recognizer.analyze(text, ["PHONE_NUMBER"])] == [number]
    assert recognizer.analyze("the order number is 12345", ["PHONE_NUMBER"]) == []


def test_an_extension_and_dotted_and_trunk_prefix_forms(pii_service) -> None:
    for number in ("(415) 555-0132 ext. 204", "415.555.0132", "+44 (0)20 7946 0958"):
        assert values(pii_service, f"Reach me at {number} today.", "PHONE_NUMBER"), number


# --- merge (pure) ----------------------------------------------------------------------------------------


def result(kind: str, start: int, end: int, score: float = 0.8, street: bool = False) -> RecognizerResult:
    return RecognizerResult(kind, start, end, score, recognition_metadata={"appliance_street": street})


def test_overlaps_leave_no_part_of_a_value_unmasked() -> None:
    text = "lives at Via Pasquale Scura 127 today"
    merged = resolve([result("PERSON", 22, 31, 0.85), result("LOCATION", 9, 31, 0.7, street=True)], text)
    assert [(r.entity_type, text[r.start : r.end]) for r in merged] == [("LOCATION", "Via Pasquale Scura 127")]
    # spaCy's "Verena Schuur Apt" beside the unit "Apt. 961": the name keeps what the unit does not cover
    text = "Dr. Verena Schuur Apt. 961 Lascano"
    merged = resolve([result("PERSON", 4, 21, 0.85), result("LOCATION", 18, 26, 0.7, street=True)], text)
    assert [(r.entity_type, text[r.start : r.end]) for r in merged] == [
        ("PERSON", "Verena Schuur"),
        ("LOCATION", "Apt. 961"),
    ]
    partial = resolve([result("PERSON", 0, 5), result("LOCATION", 3, 12, 0.6)], "abcdefghijklmn")
    assert [(r.entity_type, r.start, r.end) for r in partial] == [("PERSON", 0, 3), ("LOCATION", 3, 12)]


def test_a_checked_format_wins_over_a_longer_name_or_place() -> None:
    text = "mail john.smith@example.com"
    merged = resolve([result("PERSON", 5, 15, 0.85), result("EMAIL_ADDRESS", 5, 27, 1.0)], text)
    assert [(r.entity_type, r.start, r.end) for r in merged] == [("EMAIL_ADDRESS", 5, 27)]
    merged = resolve([result("LOCATION", 0, 30, 0.6), result("PHONE_NUMBER", 10, 20, 0.6)], "x" * 40)
    assert [(r.entity_type, r.start, r.end) for r in merged] == [
        ("LOCATION", 0, 10),
        ("PHONE_NUMBER", 10, 20),
        ("LOCATION", 20, 30),
    ]


def test_address_pieces_are_joined_and_white_space_trimmed() -> None:
    text = "12 Main St\\n Springfield, IL 62704 and Paris"
    pieces = [
        result("LOCATION", 0, 10),
        result("LOCATION", 13, 24),
        result("LOCATION", 26, 28),
        result("LOCATION", 29, 34),
        result("LOCATION", 39, 44),
    ]
    merged = resolve(pieces, text)
    assert [text[r.start : r.end] for r in merged] == ["12 Main St\\n Springfield, IL 62704", "Paris"]
    trimmed = resolve([result("PERSON", 0, 8)], "Svratka\n ")
    assert (trimmed[0].start, trimmed[0].end) == (0, 7)


def test_escaped_line_breaks_keep_offsets(pii_service) -> None:
    text = "Thea Kokshoorn\\n\\nHelmstok 174\\nApt. 861\\nAlmere"
    kinds = found(pii_service, text)
    assert ("PERSON", "Thea Kokshoorn") in kinds
    assert any(kind == "LOCATION" and "Helmstok 174" in value for kind, value in kinds)


# --- the sample's per-type recall floors (issue #19) -----------------------------------------------------


def _script():
    spec = importlib.util.spec_from_file_location("pii_accuracy_script_recall", ROOT / "scripts" / "test_pii.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# Measured on the sample with the small model when these recognizers landed (recall): LOCATION 0.876,
# PERSON 0.832, PHONE_NUMBER 0.885, CREDIT_CARD 1.0, the pattern types 1.0; F2 0.875. Floors a little under.
RECALL_FLOORS = {
    "LOCATION": 0.85,
    "PERSON": 0.80,
    "PHONE_NUMBER": 0.84,
    "CREDIT_CARD": 0.96,
    "EMAIL_ADDRESS": 1.0,
    "IBAN_CODE": 1.0,
    "IP_ADDRESS": 1.0,
    "US_SSN": 1.0,
}


def test_sample_recall_floors_per_type(pii_service, capsys: pytest.CaptureFixture[str]) -> None:
    script = _script()
    assert script.main(["--model", TEST_SPACY_MODEL, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    low = {kind: figures[kind]["recall"] for kind, floor in RECALL_FLOORS.items() if figures[kind]["recall"] < floor}
    assert not low, low
    assert figures["overall"]["f2"] >= 0.85, figures["overall"]
    assert figures["overall"]["precision"] >= 0.85, figures["overall"]


def test_holdout_is_labelled_consistently() -> None:
    lines = (ROOT / "scripts/data/pii_holdout.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 300
    for line in lines:
        record = json.loads(line)
        for span in record["spans"]:
            value = record["text"][span["start"] : span["end"]]
            assert value and value == value.strip(), (value, record["text"])
