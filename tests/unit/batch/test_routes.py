"""The Batch API routes with the official OpenAI client, in process: a FastAPI app with the batch routes and a
stand-in chat route, the real gate in front, a real SQLite registry, the replica's runner sending lines back
through the gate. (tests/e2e/test_batch.py runs the same against Ray Serve and vLLM.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from appliance.batch.caller import LIVE
from appliance.batch.routes import BatchRoutes
from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, Role
from appliance.serve.audit import AuditLog
from appliance.serve.checks import RequestLimits
from appliance.serve.errors import ApiError
from appliance.serve.gate import BATCH_ROUTES, Gate, GateSettings
from appliance.serve.ingress_config import BatchOptions, IngressConfig
from appliance.serve.keystore import KeyStore
from tests.unit.serve.test_gate import RecordingMetrics

KEYS = (
    ApiKeyRecord("alice", Role.USER, ("a",), hash_key("sk-alice")),
    ApiKeyRecord("bob", Role.USER, ("a",), hash_key("sk-bob")),
)
CAPS = {"a": RequestLimits(max_tokens=16), "b": RequestLimits(max_tokens=16)}


class Ingress(BatchRoutes):
    def __init__(self, config: IngressConfig) -> None:
        self._config = config

    async def chat(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        return {
            "object": "chat.completion",
            "model": body["model"],
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }


def _app(tmp_path: Path, file_max_bytes: int = 100_000) -> tuple[Any, Ingress]:
    config = IngressConfig(
        auth_enabled=True,
        max_body_bytes=10_000,
        caps=CAPS,
        audit_path=str(tmp_path / "audit.log"),
        audit_prompts=False,
        secrets_path=None,
        keys=KEYS,
        registry_url=f"sqlite:///{tmp_path / 'registry.db'}",
        batch=BatchOptions(str(tmp_path / "batch"), file_max_bytes, 100, 2, 0),
    )
    ingress = Ingress(config)
    app = FastAPI()

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(status_code=exc.status, content=json.loads(exc.body()), headers=dict(exc.headers))

    app.add_exception_handler(ApiError, api_error)
    for name, (method, path) in BATCH_ROUTES.items():
        getattr(app, method.lower())(path)(getattr(ingress, name))
    app.post("/v1/chat/completions")(ingress.chat)
    gate = Gate(
        app,
        GateSettings(True, 10_000, dict(CAPS)),
        KeyStore(KEYS),
        AuditLog(tmp_path / "audit.log"),
        RecordingMetrics(),
    )
    ingress._asgi_app = gate  # what Ray Serve's ingress wrapper holds: the whole app, gate first
    return gate, ingress


def _client(gate: Any, key: str) -> openai.AsyncOpenAI:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url="http://test")
    return openai.AsyncOpenAI(base_url="http://test/v1", api_key=key, http_client=http, max_retries=0)


def _jsonl(*models: str, url: str = "/v1/chat/completions") -> bytes:
    return "".join(
        json.dumps(
            {
                "custom_id": f"r{n}",
                "method": "POST",
                "url": url,
                "body": {"model": m, "messages": [{"role": "user", "content": f"q{n}"}]},
            }
        )
        + "\n"
        for n, m in enumerate(models)
    ).encode()


async def _until_done(client: openai.AsyncOpenAI, batch_id: str) -> Any:
    for _ in range(200):
        batch = await client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        await asyncio.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not finish: {batch.status}")


def test_upload_run_list_download_and_isolation(tmp_path: Path) -> None:
    gate, ingress = _app(tmp_path)

    async def scenario() -> None:
        alice, bob = _client(gate, "sk-alice"), _client(gate, "sk-bob")
        uploaded = await alice.files.create(file=("in.jsonl", _jsonl("a", "a", "a")), purpose="batch")
        assert uploaded.purpose == "batch" and uploaded.filename == "in.jsonl" and uploaded.bytes > 0
        batch = await alice.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"job": "t"}
        )
        assert batch.status == "validating" and batch.request_counts.total == 3
        done = await _until_done(alice, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 3 and done.error_file_id is None
        output = [json.loads(x) for x in (await alice.files.content(done.output_file_id)).text.splitlines()]
        assert sorted(x["custom_id"] for x in output) == ["r0", "r1", "r2"]
        assert all(x["response"]["status_code"] == 200 and x["response"]["body"]["model"] == "a" for x in output)
        assert [b.id for b in (await alice.batches.list()).data] == [batch.id]
        assert {f.id for f in (await alice.files.list()).data} == {uploaded.id, done.output_file_id}
        # bob sees none of it: every id is as unknown as a made-up one
        assert (await bob.batches.list()).data == [] and (await bob.files.list()).data == []
        for call in (
            bob.batches.retrieve(batch.id),
            bob.batches.cancel(batch.id),
            bob.files.retrieve(uploaded.id),
            bob.files.content(uploaded.id),
            bob.files.delete(uploaded.id),
            bob.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"),
        ):
            with pytest.raises(openai.NotFoundError):
                await call
        assert (await alice.files.delete(uploaded.id)).deleted
        with pytest.raises(openai.NotFoundError):
            await alice.files.retrieve(uploaded.id)
        audited = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
        assert {x["endpoint"] for x in audited} >= {"/v1/files", "/v1/batches", "/v1/chat/completions"}
        assert [x["batch_id"] for x in audited if x["endpoint"] == "/v1/chat/completions"] == [batch.id] * 3
        ingress._batch_runner._task.cancel()

    asyncio.run(scenario())


def test_bad_files_and_lines_are_refused_at_the_edge(tmp_path: Path) -> None:
    gate, ingress = _app(tmp_path, file_max_bytes=2000)

    async def scenario() -> None:
        alice = _client(gate, "sk-alice")
        with pytest.raises(openai.BadRequestError) as caught:
            await alice.files.create(file=("x.jsonl", b"not json\n"), purpose="batch")
        assert caught.value.code == "invalid_file"
        with pytest.raises(openai.BadRequestError):
            await alice.files.create(file=("x.jsonl", _jsonl("a")), purpose="fine-tune")
        with pytest.raises(openai.APIStatusError) as too_big:
            await alice.files.create(file=("x.jsonl", _jsonl(*["a"] * 40)), purpose="batch")
        assert too_big.value.status_code == 413
        mixed = _jsonl("a", "b") + _jsonl("a", url="/v1/completions").replace(b'"r0"', b'"r9"')
        uploaded = await alice.files.create(file=("x.jsonl", mixed), purpose="batch")
        with pytest.raises(openai.BadRequestError):
            await alice.batches.create(input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h")
        batch = await alice.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert batch.status == "failed" and batch.failed_at
        assert [(e.line, e.code) for e in batch.errors.data] == [(2, "model_not_allowed"), (3, "mismatched_url")]
        with pytest.raises(openai.ConflictError):
            await alice.batches.cancel(batch.id)
        ok = await alice.files.create(file=("ok.jsonl", _jsonl("a")), purpose="batch")
        LIVE.add(100)  # live traffic in flight: the runner holds the batch's line back
        try:
            running = await alice.batches.create(
                input_file_id=ok.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            with pytest.raises(openai.ConflictError):  # the input of a batch not finished stays
                await alice.files.delete(ok.id)
            cancelled = await alice.batches.cancel(running.id)
            assert cancelled.status in ("cancelling", "cancelled") and cancelled.cancelling_at
            done = await _until_done(alice, running.id)
            assert done.status == "cancelled" and done.request_counts.failed == 1
        finally:
            LIVE.add(-100)
        [line] = [json.loads(x) for x in (await alice.files.content(done.error_file_id)).text.splitlines()]
        assert line["custom_id"] == "r0" and line["error"]["code"] == "batch_cancelled"
        assert (await alice.files.delete(ok.id)).deleted  # finished: its input may go
        ingress._batch_runner._task.cancel()

    asyncio.run(scenario())
