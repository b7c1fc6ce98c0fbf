"""PII_DENY_LIST / PII_PATTERNS: checked when the settings are validated, masked as the operator's own types."""

from __future__ import annotations

import pytest

from appliance.config.convert import validate_partial
from appliance.config.dotenv import parse_dotenv
from appliance.config.settings import Settings
from appliance.serve.pii.custom import custom_types, parse_deny_list, parse_patterns
from appliance.serve.pii.engine import build_engines, mask_texts, options_from_settings
from tests.unit.serve.pii.conftest import TEST_SPACY_MODEL, test_options


def test_deny_list_entries() -> None:
    assert parse_deny_list(["PROJECT=Blue Falcon", "Acme", " CODE_NAME = Red Kite "]) == [
        ("PROJECT", "Blue Falcon"),
        ("CUSTOM", "Acme"),
        ("CODE_NAME", "Red Kite"),
    ]
    for bad in (["project=x"], ["PROJECT="], ["1X=y"], ["A__B=c"]):
        with pytest.raises(ValueError):
            parse_deny_list(bad)


def test_patterns_json() -> None:
    assert parse_patterns("") == []
    assert parse_patterns('{"EMPLOYEE_ID": "EMP-[0-9]{6}", "TICKET": ["T-[0-9]+", "INC[0-9]{5}"]}') == [
        ("EMPLOYEE_ID", "EMP-[0-9]{6}"),
        ("TICKET", "T-[0-9]+"),
        ("TICKET", "INC[0-9]{5}"),
    ]
    for bad, says in (
        ("{", "JSON object"),
        ('["x"]', "JSON object"),
        ('{"id": "x"}', "upper-case"),
        ('{"ID": "("}', "valid regular expression"),
        ('{"ID": "a*"}', "empty text"),
        ('{"ID": 5}', "regular expression"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_patterns(bad)
    assert custom_types((("A", "x"),), (("B", "y"), ("A", "z"))) == ("A", "B")


def test_settings_check_them_at_load() -> None:
    env = parse_dotenv(
        """PII_DENY_LIST=PROJECT=Blue Falcon,Acme\nPII_PATTERNS='{"EMPLOYEE_ID": "EMP-[0-9]{6}"}'\n""", ".env"
    )
    assert not env.issues
    problems: list = []
    settings, errors = validate_partial(
        Settings, env.values(), lambda err: problems.append(err) or [], by_alias=True, by_name=False
    )
    assert not problems and not errors, (problems, errors)
    options = options_from_settings(settings)
    assert options.deny_list == (("PROJECT", "Blue Falcon"), ("CUSTOM", "Acme"))
    assert options.patterns == (("EMPLOYEE_ID", "EMP-[0-9]{6}"),)
    bad = parse_dotenv("""PII_PATTERNS='{"EMPLOYEE_ID": "EMP-[0-9"}'\n""", ".env")
    settings, errors = validate_partial(Settings, bad.values(), lambda err: [str(err)], by_alias=True, by_name=False)
    assert errors and "valid regular expression for EMPLOYEE_ID" in errors[0]


def test_custom_types_are_masked_with_their_own_placeholders() -> None:
    options = test_options(
        spacy_model=TEST_SPACY_MODEL,
        deny_list=(("PROJECT", "Blue Falcon"),),
        patterns=(("EMPLOYEE_ID", r"\bEMP-[0-9]{6}\b"),),
    )
    analyzer, anonymizer = build_engines(options)
    result = mask_texts(analyzer, anonymizer, ["Project blue falcon: ask EMP-123456, not EMP-12."], options)
    assert result.texts == ["Project <PROJECT_1>: ask <EMPLOYEE_ID_1>, not EMP-12."]
    assert result.originals == {"<PROJECT_1>": "blue falcon", "<EMPLOYEE_ID_1>": "EMP-123456"}
