import pytest

from appliance.config.keys import find_key, hash_key, new_key
from appliance.config.secrets import ApiKeyFormatError, ApiKeyRecord, Role, parse_api_key

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
    ["", "sha256:xyz;role=user;models=*", f"sha256:{HASH};role=root", f"sha256:{HASH};role=user",
     f"sha256:{HASH};role=user;models=*;extra=1", f"{HASH};role=admin", f"sha256:{HASH.upper()};role=admin"],
)  # fmt: skip
def test_malformed_records_are_rejected_without_echoing(value: str) -> None:
    with pytest.raises(ApiKeyFormatError) as err:
        parse_api_key("API_KEY_X", value)
    assert HASH not in str(err.value)
