from appliance.config.dotenv import parse_dotenv


def test_plain_quoted_exported_and_commented_values() -> None:
    text = (
        "# a comment\n"
        "\n"
        "A=1\n"
        "export B = two words # trailing comment\n"
        'C="quoted # not a comment \\" escaped"\n'
        "D='single $literal'\n"
        "E=\n"
        "F=a#b\n"
    )
    parsed = parse_dotenv(text, ".env")
    assert parsed.issues == []
    assert parsed.values() == {
        "A": "1",
        "B": "two words",
        "C": 'quoted # not a comment " escaped',
        "D": "single $literal",
        "E": "",
        "F": "a#b",
    }
    assert parsed.line_of("A") == 3
    assert parsed.line_of("D") == 6


def test_every_malformed_line_is_reported_with_its_line_number() -> None:
    text = "GOOD=1\nno equals sign\n1BAD=2\nQ=\"unterminated\nR='x' trailing\nS=mid\"quote\n"
    parsed = parse_dotenv(text, ".env")
    assert [issue.line for issue in parsed.issues] == [2, 3, 4, 5, 6]
    assert parsed.values() == {"GOOD": "1"}
    assert all(issue.file == ".env" for issue in parsed.issues)
    assert parsed.issues[2].key == "Q"


def test_duplicate_key_names_both_lines() -> None:
    parsed = parse_dotenv("A=1\nB=2\nA=3\n", ".env")
    (issue,) = parsed.issues
    assert issue.key == "A"
    assert "lines 1 and 3" in issue.message
    assert parsed.values()["A"] == "1"


def test_secret_file_lines_are_never_echoed() -> None:
    parsed = parse_dotenv("this-is-the-password-line\nK='hunter2hunter2\n", ".secrets", secret=True)
    rendered = " ".join(issue.render() for issue in parsed.issues)
    assert len(parsed.issues) == 2
    assert "this-is-the-password-line" not in rendered
    assert "hunter2" not in rendered
