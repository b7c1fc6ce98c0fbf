"""The gate over a small ASGI app standing in for the OpenAI app: what reaches it, what the client gets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, Role
from appliance.serve.audit import AuditLog
from appliance.serve.gate import PRINCIPAL_STATE, Gate, GateSettings
from appliance.serve.keystore import KeyStore

KEY = "sk-gate-test"


class RecordingMetrics:
    def __init__(self) -> None:
        self.done: list[dict[str, Any]] = []
        self.flight: list[tuple[str, int]] = []
        self.auth: list[str] = []

    def request_done(self, **kwargs: Any) -> None:
        self.done.append(kwargs)

    def in_flight(self, model: str, delta: int) -> None:
        self.flight.append((model, delta))

    def auth_failure(self, reason: str) -> None:
        self.auth.append(reason)

    def budget_refused(self, key: str, limit: str) -> None:
        self.auth.append(f"budget:{key}:{limit}")

    def audit_refused(self) -> None:
        self.auth.append("audit")


class Downstream:
    """Echoes what it received; streams three SSE events plus a usage event when asked to stream."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope, receive, send) -> None:
        message = await receive()
        body = json.loads(message["body"] or b"{}")
        self.seen.append({"scope": scope, "body": body, "raw": message["body"]})
        if body.get("stream"):
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            for text in ("a", "b"):
                chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
                await send(
                    {"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(), "more_body": True}
                )
            usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
            await send(
                {"type": "http.response.body", "body": f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode()}
            )
            return
        payload = json.dumps({"ok": True, "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def parts(tmp_path: Path):
    downstream = Downstream()
    metrics = RecordingMetrics()
    keys = KeyStore((ApiKeyRecord("alice", Role.USER, ("a",), hash_key(KEY)),))
    gate = Gate(
        downstream, GateSettings(True, 1000, {"a": 16, "b": 16}), keys, AuditLog(tmp_path / "audit.log"), metrics
    )
    return gate, downstream, metrics, tmp_path / "audit.log"


def call(gate: Gate, path: str, body: bytes = b"", headers: dict[str, str] | None = None, method: str = "POST"):
    sent: list[dict[str, Any]] = []
    chunks = [body[i : i + 300] for i in range(0, len(body), 300)] or [b""]
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "client": ("10.9.8.7", 5555),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    asyncio.run(gate(scope, receive, send))
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def auth(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {KEY}", **(extra or {})}


def test_missing_key_is_refused_before_the_app(parts) -> None:
    gate, downstream, metrics, audit = parts
    status, headers, body = call(gate, "/v1/chat/completions", b'{"model":"a"}')
    assert status == 401 and json.loads(body)["error"]["code"] == "missing_api_key"
    assert b"x-request-id" in headers
    assert downstream.seen == [] and metrics.auth == ["missing_api_key"]
    assert audit_lines(audit)[0]["status"] == 401


def test_health_is_open_and_other_paths_guarded(parts) -> None:
    gate, downstream, *_ = parts
    assert call(gate, "/health/live", method="GET")[0] == 200
    assert call(gate, "/admin/models", method="GET", headers=auth())[0] == 403
    assert len(downstream.seen) == 1


def test_generation_is_checked_capped_and_audited(parts) -> None:
    gate, downstream, metrics, audit = parts
    status, headers, body = call(
        gate,
        "/v1/completions",
        b'{"model":"a","prompt":"p","max_tokens":999}',
        auth({"x-request-id": "rid-1", "x-forwarded-for": "1.2.3.4, 10.0.0.1", "x-client-request-id": "mine-7"}),
    )
    assert status == 200 and json.loads(body)["ok"]
    seen = downstream.seen[0]
    assert seen["body"]["max_tokens"] == 16
    assert all(k != b"authorization" for k, _ in seen["scope"]["headers"]), "the key does not travel on"
    assert seen["scope"]["state"][PRINCIPAL_STATE].name == "alice"
    assert dict(seen["scope"]["headers"])[b"content-length"] == str(len(seen["raw"])).encode()
    assert b"x-request-id" not in headers, "the proxy in front echoes an incoming request id itself"
    (line,) = audit_lines(audit)
    assert line | {"latency_ms": 0, "time": 0} == {
        "time": 0,
        "request_id": "rid-1",
        "key": "alice",
        "role": "user",
        "model": "a",
        "endpoint": "/v1/completions",
        "method": "POST",
        "stream": False,
        "status": 200,
        "error": None,
        "prompt_tokens": 3,
        "completion_tokens": 1,
        "latency_ms": 0,
        "ttft_ms": None,
        "client": "10.0.0.1",
        "client_request_id": "mine-7",
    }
    # the client's own X-Forwarded-For entries (before the one nginx wrote) are not what is recorded
    assert metrics.flight == [("a", 1), ("a", -1)]
    assert metrics.done[0]["completion_tokens"] == 1


def test_stream_usage_is_audited_and_hidden(parts) -> None:
    gate, downstream, metrics, audit = parts
    status, _, body = call(gate, "/v1/chat/completions", b'{"model":"a","messages":[],"stream":true}', auth())
    assert status == 200
    assert b'"usage"' not in body and body.endswith(b"data: [DONE]\n\n")
    assert downstream.seen[0]["body"]["stream_options"] == {"include_usage": True}
    line = audit_lines(audit)[0]
    assert line["stream"] is True and line["completion_tokens"] == 2 and line["ttft_ms"] is not None


def test_refusals_name_the_model_and_reason(parts) -> None:
    gate, downstream, metrics, audit = parts
    assert call(gate, "/v1/completions", b'{"model":"b"}', auth())[0] == 403
    assert call(gate, "/v1/completions", b'{"model":"a",', auth())[0] == 400
    assert call(gate, "/v1/completions", b"x" * 5000, auth())[0] == 413
    assert call(gate, "/v1/completions", b"{}", auth({"content-length": "99999"}))[0] == 413
    lines = audit_lines(audit)
    assert [(l["status"], l["error"], l["model"]) for l in lines] == [  # noqa: E741
        (403, "model_not_allowed", "b"),
        (400, "invalid_json", None),
        (413, "body_too_large", None),
        (413, "body_too_large", None),
    ]
    assert downstream.seen == []
    assert KEY not in (audit.read_text())


def test_stream_audit_line_is_written_before_the_client_sees_done(tmp_path: Path) -> None:
    """OpenAI clients stop reading at ``data: [DONE]``: the line must exist by then, not after the last frame."""
    audit_path = tmp_path / "audit.log"

    async def downstream(scope, receive, send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = {
            "choices": [{"index": 0, "delta": {"content": "x"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }
        await send({"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    keys = KeyStore((ApiKeyRecord("alice", Role.USER, ("a",), hash_key(KEY)),))
    gate = Gate(downstream, GateSettings(True, 1000, {"a": 16}), keys, AuditLog(audit_path), RecordingMetrics())
    lines_when_done: list[int] = []

    async def send(message) -> None:
        if b"[DONE]" in message.get("body", b""):
            lines_when_done.append(len(audit_path.read_text().splitlines()) if audit_path.exists() else 0)

    async def receive():
        return {"type": "http.request", "body": b'{"model":"a","messages":[],"stream":true}', "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "client": ("10.0.0.1", 1),
        "headers": [(b"authorization", f"Bearer {KEY}".encode()), (b"x-request-id", b"r-1")],
    }
    asyncio.run(gate(scope, receive, send))
    assert lines_when_done == [1]
    assert len(audit_path.read_text().splitlines()) == 1, "written once"


def test_plain_audit_line_is_written_once_the_client_has_content_length_bytes(tmp_path: Path) -> None:
    """A body sent whole and then closed by an empty last frame: the client is done after the first frame."""
    audit_path = tmp_path / "audit.log"
    payload = json.dumps({"ok": True, "usage": {"prompt_tokens": 2, "completion_tokens": 3}}).encode()

    async def downstream(scope, receive, send) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    keys = KeyStore((ApiKeyRecord("alice", Role.USER, ("a",), hash_key(KEY)),))
    gate = Gate(downstream, GateSettings(True, 1000, {"a": 16}), keys, AuditLog(audit_path), RecordingMetrics())
    lines_when_body: list[int] = []

    async def send(message) -> None:
        if message.get("body"):
            lines_when_body.append(len(audit_path.read_text().splitlines()) if audit_path.exists() else 0)

    async def receive():
        return {"type": "http.request", "body": b'{"model":"a","prompt":"x"}', "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/completions",
        "client": ("10.0.0.1", 1),
        "headers": [(b"authorization", f"Bearer {KEY}".encode())],
    }
    asyncio.run(gate(scope, receive, send))
    assert lines_when_body == [1]
    line = audit_lines(audit_path)
    assert len(line) == 1 and line[0]["completion_tokens"] == 3 and line[0]["status"] == 200


def test_a_model_disabled_in_the_registry_answers_404(tmp_path: Path) -> None:
    disabled = {"a"}
    keys = KeyStore((ApiKeyRecord("alice", Role.USER, ("a",), hash_key(KEY)),))
    downstream = Downstream()
    gate = Gate(
        downstream,
        GateSettings(True, 1000, {"a": 16}),
        keys,
        AuditLog(tmp_path / "audit.log"),
        RecordingMetrics(),
        disabled=lambda model: model in disabled,
    )
    status, _, body = call(gate, "/v1/completions", b'{"model":"a","prompt":"p"}', auth())
    assert status == 404 and json.loads(body)["error"]["code"] == "model_not_found" and downstream.seen == []
    disabled.clear()
    assert call(gate, "/v1/completions", b'{"model":"a","prompt":"p"}', auth())[0] == 200


def test_the_registry_url_is_made_absolute_for_the_replicas(tmp_path: Path) -> None:
    from appliance.serve.ingress_config import absolute_registry_url

    assert (
        absolute_registry_url("sqlite:///data/registry/registry.db", tmp_path)
        == f"sqlite:///{tmp_path}/data/registry/registry.db"
    )
    assert absolute_registry_url("sqlite:////srv/r.db", tmp_path) == "sqlite:////srv/r.db"
    assert absolute_registry_url("postgresql://u@h:5432/db", tmp_path) == "postgresql://u@h:5432/db"


def test_no_request_is_served_unaudited_when_the_audit_disk_is_full(parts, monkeypatch: pytest.MonkeyPatch) -> None:
    """The free-space check is the real statvfs of the log's filesystem: asking for more than it has is a full
    disk as the gate sees it; 503 + Retry-After, nothing forwarded; served again once there is room."""
    import os

    from appliance.serve import audit as audit_module

    gate, downstream, metrics, audit = parts
    monkeypatch.setattr(audit_module, "FREE_CHECK_INTERVAL_S", 0.0)
    stat = os.statvfs(audit.parent)
    gate.audit.min_free_bytes = stat.f_blocks * stat.f_frsize + 1  # more than the whole filesystem
    status, headers, body = call(gate, "/v1/completions", b'{"model":"a","prompt":"x"}', auth())
    error = json.loads(body)["error"]
    assert (status, error["code"], error["type"]) == (503, "audit_unavailable", "service_unavailable_error")
    assert {k.lower(): v for k, v in headers.items()}[b"retry-after"] == b"30" and downstream.seen == []
    assert metrics.auth == ["audit"]
    assert call(gate, "/v1/models", b"", auth(), method="GET")[0] == 200  # nothing to audit: still served
    gate.audit.min_free_bytes = 0
    assert call(gate, "/v1/completions", b'{"model":"a","prompt":"x"}', auth())[0] == 200
    assert len(downstream.seen) == 2 and audit_lines(audit)[-1]["status"] == 200


def test_a_failed_audit_write_refuses_until_the_log_opens_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from appliance.serve import audit as audit_module

    monkeypatch.setattr(audit_module, "FREE_CHECK_INTERVAL_S", 0.0)
    path = tmp_path / "audit.log"
    log = AuditLog(path, min_free_bytes=0)
    path.mkdir()  # in the file's place: opening it for appending fails (EISDIR), as a broken disk would
    log.write({"request_id": "r-1", "status": 200})
    assert "could not write the audit log" in caplog.text and "r-1" not in caplog.text
    assert not log.available() and not log.available()
    path.rmdir()
    assert log.available()
    log.write({"request_id": "r-2", "status": 200})
    assert [line["request_id"] for line in audit_lines(path)] == ["r-2"]


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_whose_audit_line_cannot_be_written_is_not_served(parts, stream: bool) -> None:
    """The log breaks while the request is with the model (admitted: the log was fine). A whole answer is held
    until its line is written and becomes a 503; a stream (already started) ends with an error event, not the
    end of the answer. The next request is refused at the door until the log opens again."""
    gate, downstream, metrics, audit = parts
    call(gate, "/v1/completions", b'{"model":"a","prompt":"x"}', auth())  # the log is open and written
    served = gate.app

    async def breaks_the_log(scope, receive, send) -> None:
        audit.unlink()
        audit.mkdir()  # in the file's place: the next line cannot be written (EISDIR), as a broken disk
        gate.audit._handle.close()  # the open handle went with the file
        await served(scope, receive, send)

    gate.app = breaks_the_log
    body = json.dumps({"model": "a", "prompt": "x", "stream": stream}).encode()
    status, headers, answer = call(gate, "/v1/completions", body, auth())
    if stream:
        assert status == 200
        events = [e for e in answer.decode().split("\n\n") if e]
        deltas = [json.loads(e[6:])["choices"][0]["delta"]["content"] for e in events[:-2]]
        assert deltas == ["a", "b"], events  # what was streamed before the end; the end itself was not sent
        assert events[-1] == "data: [DONE]" and json.loads(events[-2][6:])["error"]["code"] == "audit_unavailable"
    else:
        error = json.loads(answer)["error"]
        assert (status, error["code"]) == (503, "audit_unavailable") and b'"ok"' not in answer
        assert {k.lower(): v for k, v in headers.items()}[b"retry-after"] == b"30"
    gate.app = served
    assert call(gate, "/v1/completions", b'{"model":"a","prompt":"x"}', auth())[0] == 503  # refused at the door
    assert metrics.auth.count("audit") == 2  # the withheld answer and the refusal: what AuditLogUnavailable watches
