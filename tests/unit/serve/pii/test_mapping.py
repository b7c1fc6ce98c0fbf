"""Per-request placeholders and the texts of a request that get masked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.serve.errors import ApiError
from appliance.serve.pii.fields import replace_texts, request_texts
from appliance.serve.pii.placeholders import PlaceholderMap


def test_same_value_same_placeholder_different_values_never_share() -> None:
    mapping = PlaceholderMap()
    first = mapping.placeholder_for("PERSON", "Ann Lee")
    assert first == "<PERSON_1>"
    assert mapping.placeholder_for("PERSON", "Bo Kim") == "<PERSON_2>"
    assert mapping.placeholder_for("EMAIL_ADDRESS", "a@b.c") == "<EMAIL_ADDRESS_1>"
    assert mapping.placeholder_for("PERSON", "Ann Lee") == first  # again, e.g. in a later message
    assert mapping.originals == {"<PERSON_1>": "Ann Lee", "<PERSON_2>": "Bo Kim", "<EMAIL_ADDRESS_1>": "a@b.c"}
    assert mapping.counts() == {"PERSON": 2, "EMAIL_ADDRESS": 1}


def test_placeholders_the_user_typed_are_never_reused() -> None:
    mapping = PlaceholderMap(["I literally wrote <PERSON_1> and <PERSON_2> here", "<EMAIL_ADDRESS_1>"])
    assert mapping.placeholder_for("PERSON", "Ann") == "<PERSON_3>"
    assert mapping.placeholder_for("EMAIL_ADDRESS", "a@b.c") == "<EMAIL_ADDRESS_2>"


def test_repr_never_shows_values() -> None:
    mapping = PlaceholderMap()
    mapping.placeholder_for("PERSON", "Secret Name")
    assert "Secret" not in repr(mapping)


@given(st.lists(st.tuples(st.sampled_from(["PERSON", "EMAIL_ADDRESS", "US_SSN"]), st.text(max_size=5)), max_size=40))
def test_mapping_is_a_bijection(pairs: list[tuple[str, str]]) -> None:
    mapping = PlaceholderMap()
    given_out = {pair: mapping.placeholder_for(*pair) for pair in pairs}
    assert len(set(given_out.values())) == len(given_out)  # distinct values never collide
    for (entity, value), token in given_out.items():
        assert mapping.placeholder_for(entity, value) == token  # stable
        assert mapping.originals[token] == value
        assert token.startswith(f"<{entity}_")


CHAT = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You help Ann Lee."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Mail ann@example.com"},
                {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"who": "Ann Lee"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Ann Lee: +1 212 555 1234"},
        {"role": "assistant", "content": "", "function_call": {"name": "f", "arguments": '{"card": "4095"}'}},
        {"role": "user", "name": "ann", "content": "thanks"},
    ],
}


def test_every_text_of_a_chat_request_in_order() -> None:
    fields = request_texts(CHAT)
    assert [f.path for f in fields] == [
        ("messages", 0, "content"),
        ("messages", 1, "content", 0, "text"),
        ("messages", 2, "tool_calls", 0, "function", "arguments"),
        ("messages", 3, "content"),
        ("messages", 4, "function_call", "arguments"),
        ("messages", 5, "content"),
        ("messages", 5, "name"),
    ]
    assert [f.inner for f in fields][2:5] == [("who",), None, ("card",)]
    assert fields[2].text == "Ann Lee"  # the JSON string's value, not the JSON text
    import copy

    body = replace_texts(copy.deepcopy(CHAT), fields, [f"T{i}" for i in range(len(fields))])
    assert body["messages"][1]["content"][0]["text"] == "T1"
    assert body["messages"][1]["content"][1]["image_url"]["url"] == "http://x/y.png"
    assert body["messages"][2]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"who": "T2"}'}
    assert body["messages"][3]["content"] == "T3"
    assert body["messages"][4]["function_call"]["arguments"] == '{"card": "T4"}'
    assert body["messages"][5]["name"] == "T6"


def test_json_arguments_are_masked_value_by_value_and_stay_valid_json() -> None:
    import json

    arguments = json.dumps({"to": 'Ann "Nan" O\'Lee', "cc": ["bo@example.com", 7, None], "n": {"deep": "x\ny"}})
    body = {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": arguments}}]}]}
    fields = request_texts(body)
    assert [(f.inner, f.text) for f in fields] == [
        (("to",), 'Ann "Nan" O\'Lee'),
        (("cc", 0), "bo@example.com"),
        (("n", "deep"), "x\ny"),
    ]
    replace_texts(body, fields, ['<PERSON_1> "x"', "<EMAIL_ADDRESS_1>", "é\n"])
    masked = json.loads(body["messages"][0]["tool_calls"][0]["function"]["arguments"])
    assert masked == {"to": '<PERSON_1> "x"', "cc": ["<EMAIL_ADDRESS_1>", 7, None], "n": {"deep": "é\n"}}


def test_arguments_that_are_not_json_are_one_text() -> None:
    for arguments in ("not json {", '"just a string"', "42"):
        body = {"messages": [{"role": "assistant", "function_call": {"name": "f", "arguments": arguments}}]}
        (field,) = request_texts(body)
        assert field.inner is None and field.text == arguments
        replace_texts(body, [field], ["T"])
        assert body["messages"][0]["function_call"]["arguments"] == "T"


def test_completion_prompts_and_suffix() -> None:
    assert [f.path for f in request_texts({"prompt": "a", "suffix": "b"})] == [("prompt",), ("suffix",)]
    assert [f.text for f in request_texts({"prompt": ["x", "y"]})] == ["x", "y"]


def test_token_id_prompts_cannot_be_masked() -> None:
    with pytest.raises(ApiError) as refused:
        request_texts({"prompt": [[1, 2, 3]]})
    assert refused.value.status == 400 and refused.value.code == "pii_unmaskable_prompt"
    with pytest.raises(ApiError):
        request_texts({"prompt": 5})


def test_replace_needs_one_text_per_field() -> None:
    with pytest.raises(ValueError):
        replace_texts({"prompt": "x"}, request_texts({"prompt": "x"}), [])
