"""The pure parts of the Batch API: input lines checked as the gate checks requests, states, output lines."""

from __future__ import annotations

import json

import pytest

from appliance.batch.lines import (
    ACTIVE,
    TERMINAL,
    BatchStatus,
    after_cancel,
    check_create,
    check_jsonl,
    counts,
    expired,
    may_move,
    output_line,
    parse_input,
    reported,
    unanswered_line,
)
from appliance.config.secrets import Role
from appliance.serve.checks import Principal, RequestLimits
from appliance.serve.errors import ApiError

CAPS = {
    "gen": RequestLimits(max_tokens=16),
    "other": RequestLimits(max_tokens=16),
    "emb": RequestLimits(max_tokens=0, task="embed"),
}
ALICE = Principal("alice", Role.USER, ("gen", "emb"))
CHAT = "/v1/chat/completions"


def line(custom_id: str, model: str = "gen", url: str = CHAT, **body: object) -> str:
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": payload})


def parse(text: str, endpoint: str = CHAT, max_requests: int = 100, max_line_bytes: int = 10_000):
    return parse_input(
        text.encode(),
        endpoint=endpoint,
        principal=ALICE,
        caps=CAPS,
        max_requests=max_requests,
        max_line_bytes=max_line_bytes,
    )


def test_good_lines_are_kept_in_order_with_their_numbers_and_bodies() -> None:
    lines, errors = parse(line("a") + "\n\n" + line("b", max_tokens=4) + "\n")
    assert errors == []
    assert [(x.line, x.custom_id) for x in lines] == [(1, "a"), (3, "b")]
    assert json.loads(lines[1].body)["max_tokens"] == 4


def test_every_bad_line_is_reported_with_its_number_code_and_param() -> None:
    text = "\n".join(
        [
            line("ok"),
            "not json",
            "[1, 2]",
            line("ok"),  # duplicate custom_id
            line("u", url="/v1/completions"),  # not the batch's endpoint
            line("m", model="nope"),  # unknown model
            line("o", model="other"),  # a model this key may not use
            line("e", model="emb"),  # an embedding model on the chat route
            line("s", stream=True),
            json.dumps({"custom_id": "g", "method": "GET", "url": CHAT, "body": {}}),
            json.dumps({"custom_id": 7, "url": CHAT, "body": {}}),
            line("n", n=99),  # beyond the model's bounds, as the gate refuses it live
            json.dumps({"custom_id": "r", "url": CHAT, "body": {"model": "gen", "messages": [{"role": []}]}}),
        ]
    )
    lines, errors = parse(text)
    assert [x.custom_id for x in lines] == ["ok"]
    got = [(e.line, e.code, e.param) for e in errors]
    assert got == [
        (2, "invalid_json_line", None),
        (3, "invalid_json_line", None),
        (4, "duplicate_custom_id", "custom_id"),
        (5, "mismatched_url", "url"),
        (6, "model_not_found", "body.model"),
        (7, "model_not_allowed", "body.model"),
        (8, "wrong_model_type", "body.model"),
        (9, "invalid_body", "body.stream"),
        (10, "invalid_method", "method"),
        (11, "invalid_custom_id", "custom_id"),
        (12, got[-2][1], "body.n"),
        (13, got[-1][1], got[-1][2]),
    ]
    # a role the gate's checks trip over (a TypeError there today) is still that line's error, never a 500
    assert got[-1][1:] in (
        ("invalid_body", "body"),
        ("invalid_value", "body.messages[0].role"),
        ("invalid_value", "body.messages.0.role"),
    )
    assert all(e.message and "Traceback" not in e.message for e in errors)


def test_embeddings_lines_are_checked_as_embeddings_requests() -> None:
    good = json.dumps(
        {"custom_id": "x", "method": "POST", "url": "/v1/embeddings", "body": {"model": "emb", "input": "a"}}
    )
    bad = json.dumps(
        {"custom_id": "y", "method": "POST", "url": "/v1/embeddings", "body": {"model": "gen", "input": "a"}}
    )
    lines, errors = parse(good + "\n" + bad, endpoint="/v1/embeddings")
    assert [x.custom_id for x in lines] == ["x"] and [e.code for e in errors] == ["wrong_model_type"]


def test_file_limits_empty_files_and_oversized_lines() -> None:
    assert [e.code for e in parse("\n \n")[1]] == ["empty_file"]
    assert [e.code for e in parse(line("a") + "\n" + line("b"), max_requests=1)[1]] == ["too_many_requests"]
    assert [e.code for e in parse(line("a", extra="x" * 200), max_line_bytes=100)[1]] == ["line_too_large"]
    assert [
        e.code
        for e in parse_input(b"\xff", endpoint=CHAT, principal=ALICE, caps=CAPS, max_requests=1, max_line_bytes=10)[1]
    ] == ["invalid_file"]


def test_reported_errors_are_capped_and_say_how_many_more() -> None:
    _, errors = parse("\n".join("x" for _ in range(150)), max_requests=1000)
    shown = reported(errors)
    assert shown["object"] == "list" and len(shown["data"]) == 101
    assert shown["data"][-1]["code"] == "too_many_errors" and "50 more" in shown["data"][-1]["message"]
    assert set(shown["data"][0]) == {"code", "message", "param", "line"}


def test_an_upload_is_checked_for_its_jsonl_shape() -> None:
    assert check_jsonl(b'{"a": 1}\n\n{"b": 2}\n') == 2
    for bad in (b"", b"\n", b'{"a": 1}\n[1]\n', b"\xff\xfe", b"{nope"):
        with pytest.raises(ApiError) as caught:
            check_jsonl(bad)
        assert caught.value.status == 400 and caught.value.code == "invalid_file"


def test_the_create_body_is_checked() -> None:
    assert check_create({"input_file_id": "file-1", "endpoint": CHAT, "completion_window": "24h"}) == (
        "file-1",
        CHAT,
        "24h",
        {},
    )
    bad_bodies = [
        [],
        {"endpoint": CHAT},
        {"input_file_id": "f", "endpoint": "/v1/responses"},
        {"input_file_id": "f", "endpoint": CHAT, "completion_window": "1h"},
        {"input_file_id": "f", "endpoint": CHAT, "metadata": {"k": 1}},
    ]
    for body in bad_bodies:
        with pytest.raises(ApiError) as caught:
            check_create(body)
        assert caught.value.status == 400


def test_state_moves_are_openais() -> None:
    S = BatchStatus
    path = [S.VALIDATING, S.IN_PROGRESS, S.FINALIZING, S.COMPLETED]
    assert all(may_move(a, b) for a, b in zip(path, path[1:]))
    assert may_move(S.VALIDATING, S.FAILED) and may_move(S.IN_PROGRESS, S.CANCELLING)
    assert may_move(S.CANCELLING, S.CANCELLED) and may_move(S.IN_PROGRESS, S.EXPIRED)
    assert not any(may_move(t, s) for t in TERMINAL for s in S)  # nothing leaves a final state
    assert not may_move(S.IN_PROGRESS, S.COMPLETED) and not may_move(S.CANCELLING, S.COMPLETED)
    assert ACTIVE == {S.VALIDATING, S.IN_PROGRESS, S.FINALIZING, S.CANCELLING}


def test_cancel_of_each_state() -> None:
    S = BatchStatus
    assert after_cancel(S.VALIDATING) is S.CANCELLING and after_cancel(S.IN_PROGRESS) is S.CANCELLING
    assert after_cancel(S.CANCELLING) is S.CANCELLING and after_cancel(S.CANCELLED) is S.CANCELLED
    for done in (S.COMPLETED, S.FAILED, S.EXPIRED, S.FINALIZING):
        with pytest.raises(ApiError) as caught:
            after_cancel(done)
        assert caught.value.status == 409


def test_expiry_is_the_completion_window_after_creation() -> None:
    assert not expired(1000, "24h", 1000 + 86399) and expired(1000, "24h", 1000 + 86400)


def test_output_lines_are_in_openais_format() -> None:
    body = {"id": "chatcmpl-1", "object": "chat.completion"}
    assert output_line("batch_1-3", "req-3", 200, body) == {
        "id": "batch_req_batch_1-3",
        "custom_id": "req-3",
        "response": {"status_code": 200, "request_id": "batch_1-3", "body": body},
        "error": None,
    }
    missed = unanswered_line(4, "batch_1", "req-4", "batch_cancelled", "The batch was cancelled.")
    assert missed["response"] is None and missed["error"] == {
        "code": "batch_cancelled",
        "message": "The batch was cancelled.",
    }


def test_request_counts_split_2xx_from_the_rest() -> None:
    assert counts(10, {200: 6, 403: 1, 0: 2}) == {"total": 10, "completed": 6, "failed": 3}
    assert counts(3, {}) == {"total": 3, "completed": 0, "failed": 0}
