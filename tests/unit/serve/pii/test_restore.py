"""The restorer: exact placeholders, tolerated variations, and streaming that equals restoring all at once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.serve.pii.restore import Restorer

ORIGINALS = {
    "<PERSON_1>": "Ann Lee",
    "<PERSON_12>": "Bo Žák",
    "<EMAIL_ADDRESS_1>": "ann@example.com",
    "<PHONE_NUMBER_1>": "+1 212 555 1234",
    "<CREDIT_CARD_1>": "4095-2609-9393-4932",
}
RESTORER = Restorer(ORIGINALS)


def stream(text_chunks: list[str], restorer: Restorer = RESTORER) -> str:
    s = restorer.stream()
    return "".join(s.feed(chunk) for chunk in text_chunks) + s.flush()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi <PERSON_1>!", "Hi Ann Lee!"),
        ("<PERSON_12> and <PERSON_1>", "Bo Žák and Ann Lee"),
        ("mail <EMAIL_ADDRESS_1>.", "mail ann@example.com."),
        ("<person_1>", "Ann Lee"),  # case
        ("<Person 1> said", "Ann Lee said"),  # spaces for underscores, with brackets
        ("PERSON_1>", "Ann Lee"),  # missing opening bracket
        ("(<PERSON_1)", "(Ann Lee)"),  # missing closing bracket
        ("PERSON_1 said", "Ann Lee said"),  # no brackets, a word of its own
        ("<email address 1>", "ann@example.com"),
    ],
)
def test_exact_and_tolerated_forms(text: str, expected: str) -> None:
    assert RESTORER.restore(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "XPERSON_1",  # inside a word
        "PERSON_13",  # another number
        "<PERSON_2>",  # unknown placeholder
        "person 1 said",  # bare words with a space: ordinary prose, not a placeholder
        "PERSON_1x",
        "<PERSON>",
        "a < b and c > d",
    ],
)
def test_lookalikes_stay(text: str) -> None:
    assert RESTORER.restore(text) == text


def test_longest_placeholder_wins() -> None:
    assert RESTORER.restore("<PERSON_12>") == "Bo Žák"
    assert RESTORER.restore("PERSON_12 x") == "Bo Žák x"


def test_no_placeholders_means_no_change() -> None:
    assert Restorer({}).restore("<PERSON_1>") == "<PERSON_1>"
    assert stream(["<PERS", "ON_1>"], Restorer({})) == "<PERSON_1>"


@pytest.mark.parametrize("token", sorted(ORIGINALS))
def test_every_split_position_of_every_placeholder(token: str) -> None:
    text = f"before {token} after"
    for cut in range(1, len(text)):
        assert stream([text[:cut], text[cut:]]) == f"before {ORIGINALS[token]} after", cut
        for second in range(cut + 1, len(text)):
            assert stream([text[:cut], text[cut:second], text[second:]]) == f"before {ORIGINALS[token]} after"


def test_one_character_at_a_time_and_held_back_only_as_needed() -> None:
    s = RESTORER.stream()
    assert s.feed("Dear ") == "Dear "
    assert s.feed("<") == "" and s.holding == 1
    assert s.feed("PER") == "" and s.holding == 4
    assert s.feed("SON_1") == "" and s.holding == 9  # could still become <PERSON_12>
    assert s.feed("> hello") == "Ann Lee hello" and s.holding == 0
    assert s.feed(" <X") == " <X"  # '<X' can start no placeholder: not held
    assert s.holding == 0


def test_end_of_stream_flushes_held_text() -> None:
    s = RESTORER.stream()
    assert s.feed("call <PERSON_1") == "call "
    assert s.flush() == "Ann Lee"
    s = RESTORER.stream()
    assert s.feed("ends with <EMAIL_") == "ends with "
    assert s.flush() == "<EMAIL_"


def test_utf8_text_around_placeholders() -> None:
    text = "Žluťoučký <PERSON_1> 😀<PERSON_12>é"
    assert stream(list(text)) == "Žluťoučký Ann Lee 😀Bo Žáké"


ALPHABET = st.sampled_from(["<", ">", "_", " ", "1", "2", "P", "e", "E", "R", "S", "O", "N", "x", "é", "😀", "\n"])
PIECES = st.sampled_from([*ORIGINALS, "<person_1>", "PERSON_1", "<Email Address 1", "PERSON_12>", "<PERSON_"])
TEXTS = st.lists(st.one_of(PIECES, st.text(ALPHABET, max_size=4)), max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_any_chunking_equals_restoring_all_at_once(text: str, cuts: list[int]) -> None:
    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert "".join(chunks) == text
    assert stream(chunks) == RESTORER.restore(text)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4), data=st.data())
def test_restoring_a_masked_text_gives_the_original(values: list[str], data: st.DataObject) -> None:
    from appliance.serve.pii.placeholders import PlaceholderMap

    mapping = PlaceholderMap()
    tokens = [mapping.placeholder_for("PERSON", value) for value in values]
    glue = data.draw(
        st.lists(st.sampled_from([" ", ", ", ". ", "\n", " and "]), min_size=len(values), max_size=len(values))
    )
    masked = "".join(g + t for g, t in zip(glue, tokens, strict=True))
    original = "".join(g + v for g, v in zip(glue, values, strict=True))
    assert Restorer(mapping.originals).restore(masked) == original
