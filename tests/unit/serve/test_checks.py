import json

import pytest

from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, Role
from appliance.serve.checks import ANONYMOUS, Principal, authenticate, check_generation, valid_request_id
from appliance.serve.errors import ApiError

KEY = "sk-test-key-123"
RECORDS = (ApiKeyRecord("alice", Role.USER, ("a",), hash_key(KEY)),)
CAPS = {"a": 64, "b": 32}
ALICE = Principal("alice", Role.USER, ("a",))


def test_authenticate() -> None:
    assert authenticate(f"Bearer {KEY}", RECORDS, auth_enabled=True) == ALICE
    assert authenticate(None, RECORDS, auth_enabled=False) is ANONYMOUS
    for header, code in (
        (None, "missing_api_key"),
        ("", "missing_api_key"),
        (KEY, "invalid_api_key"),
        ("Basic abc", "invalid_api_key"),
        ("Bearer nope", "invalid_api_key"),
        (f"bearer {KEY}", "invalid_api_key"),
        (f"Bearer  {KEY}", "invalid_api_key"),
        (f"Bearer {KEY} ", "invalid_api_key"),
        (f"Bearer {KEY}\x0b", "invalid_api_key"),
        (f"Bearer\t{KEY}", "invalid_api_key"),
        (f"Bearer {KEY}\xa0", "invalid_api_key"),
    ):
        with pytest.raises(ApiError) as err:
            authenticate(header, RECORDS, auth_enabled=True)
        assert (err.value.status, err.value.code) == (401, code)


def refused(raw: bytes, principal: Principal = ALICE) -> ApiError:
    with pytest.raises(ApiError) as err:
        check_generation(raw, principal, CAPS)
    return err.value


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_body"),
        (b'{"messages": []}', 400, "invalid_model"),
        (b'{"model": 7}', 400, "invalid_model"),
        (b'{"model": "zzz"}', 404, "model_not_found"),
        (b'{"model": "b"}', 403, "model_not_allowed"),
        (b'{"model": "a", "max_tokens": "ten"}', 400, "invalid_type"),
        (b'{"model": "a", "max_tokens": true}', 400, "invalid_type"),
        (b'{"model": "a", "max_tokens": 0}', 400, "invalid_value"),
        (b'{"model": "a", "stream": "yes"}', 400, "invalid_type"),
        (b'{"model": "a", "stream": true, "stream_options": 3}', 400, "invalid_type"),
    ],
)
def test_refusals(raw: bytes, status: int, code: str) -> None:
    error = refused(raw)
    assert (error.status, error.code) == (status, code)
    body = json.loads(error.body())
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_unknown_model_lists_only_what_the_key_may_use() -> None:
    assert "Available models: a." in refused(b'{"model": "zzz"}').message


def test_caps_and_usage_request() -> None:
    body, facts = check_generation(b'{"model": "a", "max_tokens": 1000, "stream": true}', ALICE, CAPS)
    sent = json.loads(body)
    assert sent["max_tokens"] == 64
    assert sent["stream_options"] == {"include_usage": True}
    assert facts.stream and not facts.wants_usage and facts.model == "a"
    raw = b'{"model": "a", "max_tokens": 10}'
    body, facts = check_generation(raw, ALICE, CAPS)
    assert body is raw, "an acceptable body is forwarded untouched"
    body, _ = check_generation(b'{"model": "a"}', ALICE, CAPS)
    assert json.loads(body)["max_tokens"] == 64
    body, facts = check_generation(b'{"model":"a","stream":true,"stream_options":{"include_usage":true}}', ALICE, CAPS)
    assert facts.wants_usage


def test_prompt_only_when_asked() -> None:
    raw = b'{"model": "a", "messages": [{"role": "user", "content": "hi there"}]}'
    assert check_generation(raw, ALICE, CAPS)[1].prompt is None
    assert check_generation(raw, ALICE, CAPS, log_prompt=True)[1].prompt == "user: hi there"


def test_request_ids() -> None:
    assert valid_request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    assert valid_request_id("bad id with spaces") is None
    assert valid_request_id("x" * 200) is None
    assert valid_request_id(None) is None
