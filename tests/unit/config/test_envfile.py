import stat

from appliance.config.dotenv import parse_dotenv
from appliance.config.envfile import format_value, remove_key, set_value


def test_set_value_replaces_in_place_and_keeps_other_lines(tmp_path) -> None:
    path = tmp_path / ".secrets"
    path.write_text("# header\nA=1\nB=2\n")
    assert set_value(path, "A", "new") is True
    assert path.read_text() == "# header\nA=new\nB=2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_set_value_appends_and_is_idempotent(tmp_path) -> None:
    path = tmp_path / ".secrets"
    path.write_text("A=1\n")
    for _ in range(3):
        set_value(path, "C", "x y")
    assert path.read_text() == 'A=1\nC="x y"\n'


def test_values_round_trip_through_the_parser(tmp_path) -> None:
    path = tmp_path / "f"
    tricky = ["plain", "with space", 'quote"inside', "back\\slash", "hash # mark", "$dollar", "a;b=c,d:*"]
    for index, value in enumerate(tricky):
        set_value(path, f"K{index}", value)
    parsed = parse_dotenv(path.read_text(), "f")
    assert parsed.issues == []
    assert [parsed.values()[f"K{i}"] for i in range(len(tricky))] == tricky
    assert format_value("abc") == "abc"


def test_remove_key(tmp_path) -> None:
    path = tmp_path / "f"
    path.write_text("A=1\nexport B=2\n")
    assert remove_key(path, "B") is True
    assert remove_key(path, "B") is False
    assert path.read_text() == "A=1\n"
