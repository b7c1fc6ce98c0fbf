"""The bookend in the gate, with real Presidio: what the engine receives, what the client gets back, and
fail-closed behaviour. The engine is a small ASGI app that echoes the (masked) text it was given, the way
vLLM's completions ``echo`` does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, Role
from appliance.serve.audit import AuditLog
from appliance.serve.gate import Gate, GateSettings
from appliance.serve.keystore import KeyStore
from appliance.serve.pii.bookend import Bookend, BookendSettings, FirstReady
from tests.unit.serve.test_gate import RecordingMetrics

KEY = "sk-pii-test"
SECRETS = ("David Johnson", "david.johnson@example.com", "(212) 555-1234", "4095-2609-9393-4932")
PROMPT = (
    "I am David Johnson, e-mail david.johnson@example.com, my phone number is (212) 555-1234, card 4095-2609-9393-4932."
)


class RecordingPiiMetrics:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.restores: list[float] = []

    def scanned(self, seconds: float, counts: dict[str, int]) -> None: ...

    def restored(self, seconds: float) -> None:
        self.restores.append(seconds)

    def queue_depth(self, depth: int) -> None: ...

    def failure(self, reason: str) -> None:
        self.failures.append(reason)


class EchoEngine:
    """Answers with the text it received (chat: the last message; completions: the prompt)."""

    def __init__(self, status: int = 200) -> None:
        self.seen: list[bytes] = []
        self.status = status

    async def __call__(self, scope, receive, send) -> None:
        raw = (await receive())["body"]
        self.seen.append(raw)
        body = json.loads(raw)
        text = body["prompt"] if "prompt" in body else body["messages"][-1]["content"]
        if self.status != 200:
            error = json.dumps({"error": {"message": f"bad: {text}"}}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(error))],
                }
            )
            await send({"type": "http.response.body", "body": error})
            return
        if body.get("stream"):
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
            for piece in pieces:
                event = {"choices": [{"index": 0, "text": piece, "finish_reason": None}]}
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"data: %s\n\n" % json.dumps(event).encode(),
                        "more_body": True,
                    }
                )
            end = {"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}
            usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(pieces)}}
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: %s\n\ndata: %s\n\ndata: [DONE]\n\n"
                    % (json.dumps(end).encode(), json.dumps(usage).encode()),
                }
            )
            return
        answer = {"choices": [{"index": 0, "text": text}], "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
        if "messages" in body:
            answer = {
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1},
            }
        payload = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def make_gate(
    tmp_path: Path,
    call,
    *,
    engine: EchoEngine | None = None,
    fail_open: bool = False,
    audit_prompts: bool = True,
    timeout: float = 30.0,
    available=None,
):
    engine = engine or EchoEngine()
    pii_metrics = RecordingPiiMetrics()
    bookend = Bookend(BookendSettings(timeout, fail_open), call, pii_metrics, available)
    keys = KeyStore((ApiKeyRecord("alice", Role.USER, ("a",), hash_key(KEY)),))
    gate = Gate(
        engine,
        GateSettings(True, 100_000, {"a": 64}, audit_prompts),
        keys,
        AuditLog(tmp_path / "audit.log"),
        RecordingMetrics(),
        bookend,
    )
    return gate, engine, pii_metrics, tmp_path / "audit.log"


def post(gate: Gate, path: str, body: dict[str, Any]) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "client": ("127.0.0.1", 1),
        "headers": [(b"authorization", f"Bearer {KEY}".encode()), (b"content-type", b"application/json")],
    }
    asyncio.run(gate(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def assert_no_secrets(data: bytes | str) -> None:
    text = data.decode() if isinstance(data, bytes) else data
    for secret in SECRETS:
        assert secret not in text, secret


def sse_text(body: bytes) -> str:
    out = ""
    for block in body.split(b"\n\n"):
        if block.startswith(b"data: {"):
            for choice in json.loads(block[6:])["choices"]:
                out += choice.get("text", "")
    return out


def test_engine_sees_placeholders_client_gets_values(tmp_path: Path, pii_service) -> None:
    gate, engine, metrics, audit = make_gate(tmp_path, pii_service.mask)
    status, headers, body = post(gate, "/v1/completions", {"model": "a", "prompt": PROMPT})
    assert status == 200, body
    assert_no_secrets(engine.seen[0])
    assert b"<PERSON_1>" in engine.seen[0] and b"<CREDIT_CARD_1>" in engine.seen[0]
    assert json.loads(body)["choices"][0]["text"] == PROMPT
    assert int(headers[b"content-length"]) == len(body)
    assert metrics.restores and not metrics.failures
    line = json.loads(audit.read_text().splitlines()[-1])
    assert line["status"] == 200 and "<PERSON_1>" in line["prompt"]
    assert_no_secrets(audit.read_text())


def test_chat_across_messages_and_streaming(tmp_path: Path, pii_service) -> None:
    gate, engine, _, audit = make_gate(tmp_path, pii_service.mask)
    messages = [
        {"role": "system", "content": "Assist David Johnson."},
        {"role": "user", "content": f"{PROMPT} Remember David Johnson."},
    ]
    status, _, body = post(gate, "/v1/chat/completions", {"model": "a", "messages": messages})
    seen = json.loads(engine.seen[0])
    assert_no_secrets(engine.seen[0])
    assert "<PERSON_1>" in seen["messages"][0]["content"] and seen["messages"][1]["content"].count("<PERSON_1>") == 2
    assert json.loads(body)["choices"][0]["message"]["content"] == f"{PROMPT} Remember David Johnson."

    status, headers, body = post(gate, "/v1/completions", {"model": "a", "prompt": PROMPT, "stream": True})
    assert status == 200 and headers[b"content-type"] == b"text/event-stream"
    assert_no_secrets(engine.seen[1])
    assert sse_text(body) == PROMPT  # placeholders cut into 3-character chunks, all restored
    assert body.endswith(b"data: [DONE]\n\n") and b'"usage"' not in body  # usage still stripped
    assert_no_secrets(audit.read_text())


def test_analyzer_failure_is_503_and_the_engine_is_never_called(tmp_path: Path) -> None:
    async def broken(texts: list[str]) -> dict:
        raise RuntimeError("analyzer crashed on " + texts[0])

    gate, engine, metrics, audit = make_gate(tmp_path, broken)
    status, headers, body = post(gate, "/v1/completions", {"model": "a", "prompt": PROMPT})
    error = json.loads(body)["error"]
    assert status == 503 and error["code"] == "pii_unavailable" and error["type"] == "service_unavailable_error"
    assert int({k.lower(): v for k, v in headers.items()}[b"retry-after"]) > 0  # the service restarts in seconds
    assert engine.seen == [] and metrics.failures == ["error"]
    line = json.loads(audit.read_text().splitlines()[-1])
    assert line["status"] == 503 and line["error"] == "pii_unavailable"
    assert_no_secrets(audit.read_text())


def test_analyzer_timeout_is_503(tmp_path: Path) -> None:
    async def slow(texts: list[str]) -> dict:
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    gate, engine, metrics, _ = make_gate(tmp_path, slow, timeout=0.05)
    status, _, body = post(
        gate, "/v1/chat/completions", {"model": "a", "messages": [{"role": "user", "content": PROMPT}]}
    )
    assert status == 503 and engine.seen == [] and metrics.failures == ["timeout"]


def test_fail_open_forwards_unmasked_but_never_audits_the_prompt(tmp_path: Path) -> None:
    async def broken(texts: list[str]) -> dict:
        raise RuntimeError("down")

    gate, engine, metrics, audit = make_gate(tmp_path, broken, fail_open=True)
    status, _, _ = post(gate, "/v1/completions", {"model": "a", "prompt": PROMPT})
    assert status == 200 and PROMPT.encode() in engine.seen[0] and metrics.failures == ["error"]
    assert_no_secrets(audit.read_text())


def test_error_answers_pass_unchanged(tmp_path: Path, pii_service) -> None:
    gate, engine, _, _ = make_gate(tmp_path, pii_service.mask, engine=EchoEngine(status=400))
    status, _, body = post(gate, "/v1/completions", {"model": "a", "prompt": PROMPT})
    assert status == 400 and "<PERSON_1>" in json.loads(body)["error"]["message"]


def test_token_id_prompts_are_refused_when_masking(tmp_path: Path, pii_service) -> None:
    gate, engine, _, _ = make_gate(tmp_path, pii_service.mask)
    status, _, body = post(gate, "/v1/completions", {"model": "a", "prompt": [[1, 2, 3]]})
    assert status == 400 and json.loads(body)["error"]["code"] == "pii_unmaskable_prompt" and engine.seen == []


@pytest.mark.parametrize("audit_prompts", [False, True])
def test_audit_prompt_setting_is_respected(tmp_path: Path, pii_service, audit_prompts: bool) -> None:
    gate, _, _, audit = make_gate(tmp_path, pii_service.mask, audit_prompts=audit_prompts)
    post(gate, "/v1/completions", {"model": "a", "prompt": PROMPT})
    line = json.loads(audit.read_text().splitlines()[-1])
    assert ("prompt" in line) is audit_prompts


class ToolEchoEngine:
    """Answers with one tool call whose arguments are those of the first tool call it was sent."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        raw = (await receive())["body"]
        self.seen.append(raw)
        arguments = json.loads(raw)["messages"][0]["tool_calls"][0]["function"]["arguments"]
        answer = json.dumps(
            {
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {"id": "c2", "type": "function", "function": {"name": "send", "arguments": arguments}}
                            ],
                        },
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1},
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def test_tool_call_arguments_masked_as_json_and_restored_valid(tmp_path: Path, pii_service) -> None:
    """Real Presidio: a value with a quote inside JSON arguments is masked as the value itself, the engine gets
    valid JSON with placeholders, and the client gets valid JSON with the values back."""
    gate, engine, _, _ = make_gate(tmp_path, pii_service.mask, engine=ToolEchoEngine())  # type: ignore[arg-type]
    arguments = {"to": 'David "Dave" Johnson', "mail": "david.johnson@example.com", "note": "call (212) 555-1234"}
    messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "send", "arguments": json.dumps(arguments)}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sent"},
    ]
    status, _, body = post(gate, "/v1/chat/completions", {"model": "a", "messages": messages})
    assert status == 200, body
    seen = json.loads(json.loads(engine.seen[0])["messages"][0]["tool_calls"][0]["function"]["arguments"])
    assert_no_secrets(json.dumps(seen))
    assert "<EMAIL_ADDRESS_1>" in seen["mail"] and "<PHONE_NUMBER_1>" in seen["note"]
    answer = json.loads(body)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(answer) == arguments


def test_a_loading_pii_service_fails_at_once_and_is_never_called(tmp_path: Path) -> None:
    """The first seconds of a (re)started application: the PII service still loads. The request is refused at
    once (503 + Retry-After) instead of waiting for a replica until the timeout; the service is never called."""
    called: list[list[str]] = []

    async def service(texts: list[str]) -> dict:
        called.append(texts)
        return {"texts": texts, "originals": {}}

    states = ["loading", "ready"]

    async def state() -> str:
        return states.pop(0)

    gate, engine, metrics, audit = make_gate(tmp_path, service, available=FirstReady(state))
    status, headers, body = post(gate, "/v1/completions", {"model": "a", "prompt": "hello"})
    assert status == 503 and json.loads(body)["error"]["code"] == "pii_unavailable"
    assert int({k.lower(): v for k, v in headers.items()}[b"retry-after"]) > 0
    assert called == [] and engine.seen == [] and metrics.failures == ["unavailable"]
    status, _, _ = post(gate, "/v1/completions", {"model": "a", "prompt": "hello"})  # ready now
    assert status == 200 and called == [["hello"]]
    status, _, _ = post(gate, "/v1/completions", {"model": "a", "prompt": "hello"})  # not asked again once ready
    assert status == 200 and len(called) == 2 and states == []


def test_first_ready_lets_the_call_go_on_when_the_state_cannot_be_read() -> None:
    async def unreadable() -> str:
        raise RuntimeError("serve.status() failed")

    async def failed() -> str:
        return "failed"

    assert asyncio.run(FirstReady(unreadable)()) is True  # the call's own timeout still bounds it
    assert asyncio.run(FirstReady(failed)()) is False
