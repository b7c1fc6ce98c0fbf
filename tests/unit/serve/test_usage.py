import json

from appliance.serve.usage import UsageWatcher


def sse(*payloads: dict | str) -> bytes:
    return b"".join(
        b"data: " + (p if isinstance(p, str) else json.dumps(p, separators=(",", ":"))).encode() + b"\n\n"
        for p in payloads
    )


CHUNK = {"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}}]}
USAGE = {"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}


def test_stream_usage_is_recorded_and_stripped_when_not_asked() -> None:
    watcher = UsageWatcher(stream=True, strip_usage=True)
    first = watcher.on_body({"type": "http.response.body", "body": sse(CHUNK), "more_body": True}, 1.0)
    assert watcher.first_token_at == 1.0 and first["body"] == sse(CHUNK)
    last = watcher.on_body({"type": "http.response.body", "body": sse(CHUNK, USAGE, "[DONE]"), "more_body": True}, 2.0)
    assert last["body"] == sse(CHUNK, "[DONE]")
    assert watcher.first_token_at == 1.0
    assert watcher.usage()["completion_tokens"] == 7


def test_stream_usage_kept_when_asked() -> None:
    watcher = UsageWatcher(stream=True, strip_usage=False)
    message = {"type": "http.response.body", "body": sse(USAGE, "[DONE]")}
    assert watcher.on_body(message, 1.0)["body"] == sse(USAGE, "[DONE]")
    assert watcher.usage()["prompt_tokens"] == 5


def test_non_stream_usage_from_the_body_in_pieces() -> None:
    watcher = UsageWatcher(stream=False, strip_usage=False)
    body = json.dumps({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}).encode()
    for part in (body[:10], body[10:]):
        watcher.on_body({"type": "http.response.body", "body": part}, 0.0)
    assert watcher.usage() == {"prompt_tokens": 2, "completion_tokens": 3}
    assert watcher.first_token_at is None


def test_usage_at_the_end_of_a_body_too_large_to_keep() -> None:
    """A big embeddings answer (over the 4 MiB kept whole): its usage still settles the key's budget."""
    vectors = [{"index": i, "embedding": [0.123456789] * 4096} for i in range(128)]
    body = json.dumps({"object": "list", "data": vectors, "usage": {"prompt_tokens": 321, "total_tokens": 321}})
    raw = body.encode()
    assert len(raw) > 4 * 1024 * 1024
    watcher = UsageWatcher(stream=False, strip_usage=False)
    pieces = [raw[i : i + 65536] for i in range(0, len(raw), 65536)]
    for index, piece in enumerate(pieces):
        assert watcher.on_body({"body": piece, "more_body": index < len(pieces) - 1}, 0.0)["body"] == piece
    assert watcher.usage() == {"prompt_tokens": 321, "total_tokens": 321}
    truncated = UsageWatcher(stream=False, strip_usage=False)
    for piece in pieces[:-1]:
        truncated.on_body({"body": piece, "more_body": True}, 0.0)
    assert truncated.usage() == {}  # a body cut before its usage: nothing made up
