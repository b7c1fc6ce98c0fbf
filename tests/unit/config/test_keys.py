from pathlib import Path

import pytest

from appliance.config.keys import create_key, find_key, hash_key, limit_warnings, new_key, parse_limit, update_key
from appliance.config.secrets import ApiKeyFormatError, ApiKeyRecord, KeyLimits, Role, parse_api_key
from appliance.errors import UsageError

HASH = "b" * 64


def test_keys_are_random_and_prefixed() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(k.startswith("sk-") and len(k) > 40 for k in keys)


def test_find_key_matches_only_the_right_digest() -> None:
    key = new_key()
    records = [ApiKeyRecord("a", Role.USER, ("m",), HASH), ApiKeyRecord("b", Role.ADMIN, ("*",), hash_key(key))]
    assert find_key(key, records).name == "b"
    assert find_key(key + "x", records) is None
    assert find_key("", records) is None


def test_parse_round_trip_and_permissions() -> None:
    record = parse_api_key("API_KEY_ALICE", f"sha256:{HASH};role=user;models=m1,m2")
    assert record == ApiKeyRecord("alice", Role.USER, ("m1", "m2"), HASH)
    assert parse_api_key(record.env_key, record.to_env_value()) == record
    assert record.allows("m1") and not record.allows("m3")
    admin = parse_api_key("API_KEY_OPS", f"sha256:{HASH};role=admin")
    assert admin.allows("anything")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256:xyz;role=user;models=*",
        f"sha256:{HASH};role=root",
        f"sha256:{HASH};role=user",
        f"sha256:{HASH};role=user;models=*;extra=1",
        f"{HASH};role=admin",
        f"sha256:{HASH.upper()};role=admin",
    ],
)
def test_malformed_records_are_rejected_without_echoing(value: str) -> None:
    with pytest.raises(ApiKeyFormatError) as err:
        parse_api_key("API_KEY_X", value)
    assert HASH not in str(err.value)


def test_budgets_parse_round_trip_and_old_lines_stay_valid() -> None:
    line = f"sha256:{HASH};role=user;models=m1;rpm=60;tpm=100000;tokens_per_day=2000000"
    record = parse_api_key("API_KEY_ALICE", line)
    assert record.limits == KeyLimits(rpm=60, tpm=100_000, tokens_per_day=2_000_000)
    assert record.to_env_value() == line
    assert parse_api_key(record.env_key, record.to_env_value()) == record
    only_tpm = parse_api_key("API_KEY_B", f"sha256:{HASH};role=admin;tpm=5")
    assert only_tpm.limits == KeyLimits(tpm=5) and not only_tpm.limits.unlimited
    assert only_tpm.to_env_value() == f"sha256:{HASH};role=admin;models=*;tpm=5"
    old = parse_api_key("API_KEY_C", f"sha256:{HASH};role=user;models=m1")
    assert old.limits == KeyLimits() and old.limits.unlimited
    assert old.to_env_value() == f"sha256:{HASH};role=user;models=m1"


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (";rpm=0", "rpm=<a whole number from 1 to"),
        (";tpm=-5", "tpm=<a whole number"),
        (";tpm=1.5", "tpm=<"),
        (";tokens_per_day=", "tokens_per_day=<"),
        (";rpm=ten", "rpm=<"),
        (";tpm=10000000000000", "tpm=<"),
        (";rpd=5", "only the fields sha256, role, models, rpm, tpm and tokens_per_day"),
    ],
)
def test_malformed_budgets_are_rejected_naming_the_field(tail: str, expected: str) -> None:
    with pytest.raises(ApiKeyFormatError) as err:
        parse_api_key("API_KEY_X", f"sha256:{HASH};role=user;models=*{tail}")
    assert expected in err.value.expected
    assert HASH not in str(err.value)


def test_update_key_rewrites_the_line_keeping_the_hash(tmp_path: Path) -> None:
    secrets = tmp_path / ".secrets"
    secrets.write_text("# keep me\nHF_TOKEN=\n")
    key, record = create_key(
        secrets, "alice", Role.USER, ("m1",), existing=[], served=["m1", "m2"], limits=KeyLimits(rpm=10)
    )
    assert record.limits == KeyLimits(rpm=10)
    updated = update_key(
        secrets,
        "ALICE",
        existing=[record],
        served=["m1", "m2"],
        models=("m1", "m2"),
        limits={"tpm": 1000, "tokens_per_day": 50_000},
    )
    assert updated == ApiKeyRecord("alice", Role.USER, ("m1", "m2"), hash_key(key), KeyLimits(10, 1000, 50_000))
    lines = secrets.read_text().splitlines()
    assert lines[:2] == ["# keep me", "HF_TOKEN="] and len(lines) == 3
    assert parse_api_key("API_KEY_ALICE", lines[2].split("=", 1)[1]) == updated
    removed = update_key(secrets, "alice", existing=[updated], served=["m1"], limits={"rpm": None})
    assert removed is not None and removed.limits == KeyLimits(tpm=1000, tokens_per_day=50_000)
    assert removed.sha256 == hash_key(key), "the key itself stays valid"
    assert update_key(secrets, "bob", existing=[updated], served=["m1"], limits={"rpm": 1}) is None


def test_update_key_checks_role_and_models(tmp_path: Path) -> None:
    secrets = tmp_path / ".secrets"
    admin = ApiKeyRecord("ops", Role.ADMIN, ("*",), HASH)
    with pytest.raises(UsageError, match="needs --models"):
        update_key(secrets, "ops", existing=[admin], served=["m1"], role=Role.USER)
    with pytest.raises(UsageError, match="gpt-9"):
        update_key(secrets, "ops", existing=[admin], served=["m1"], role=Role.USER, models=("gpt-9",))
    assert not secrets.exists(), "a refused update writes nothing"
    user = update_key(secrets, "ops", existing=[admin], served=["m1"], role=Role.USER, models=("m1",))
    assert user is not None and user.role is Role.USER and user.models == ("m1",)


def test_parse_limit_names_the_flag() -> None:
    assert parse_limit("--rpm", "60") == 60
    assert parse_limit("--rpm", "none", allow_none=True) is None
    for bad in ("0", "-1", "x", "1.5", "none"):
        with pytest.raises(UsageError, match=r"--rpm: expected a whole number from 1 to"):
            parse_limit("--rpm", bad)


def test_limit_warnings_name_the_models_whose_cap_cannot_fit() -> None:
    record = ApiKeyRecord("a", Role.USER, ("m1",), HASH, KeyLimits(tpm=1000, tokens_per_day=4096))
    warnings = limit_warnings(record, {"m1": 2048, "m2": 100_000})
    assert len(warnings) == 1 and "tpm 1000" in warnings[0] and "m1 (2048)" in warnings[0]
    assert limit_warnings(ApiKeyRecord("a", Role.ADMIN, ("*",), HASH), {"m1": 2048}) == []
