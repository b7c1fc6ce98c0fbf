"""The batch runner against a real SQLite registry and the real gate (keys, allowlists, audit), with a small ASGI
app standing in for the OpenAI routes and engines."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.batch.caller import BatchCaller
from appliance.batch.lines import BatchStatus
from appliance.batch.runner import BatchRunner, RunnerSettings, asgi_call
from appliance.batch.store import PURPOSE_BATCH, BatchStore
from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, Role
from appliance.serve.audit import AuditLog
from appliance.serve.gate import Gate, GateSettings
from appliance.serve.keystore import KeyStore
from tests.unit.serve.test_gate import RecordingMetrics

CHAT = "/v1/chat/completions"


class Engines:
    """Answers a chat completion naming the model and the prompt; can refuse the first calls or hold each call."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.refuse_first = 0
        self.hold: asyncio.Event | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = json.loads((await receive())["body"])
        if self.refuse_first > 0:
            self.refuse_first -= 1
            payload, status, headers = b'{"error": {"message": "busy", "code": "x"}}', 429, [(b"retry-after", b"0")]
        else:
            self.prompts.append(body["messages"][0]["content"])
            if self.hold is not None:
                await self.hold.wait()
            payload = json.dumps(
                {
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 1},
                }
            ).encode()
            status, headers = 200, []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *headers],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def setup(tmp_path: Path):
    engines = Engines()
    keys = KeyStore((ApiKeyRecord("alice", Role.USER, ("a",), hash_key("sk-alice")),))
    audit = tmp_path / "audit.log"
    gate = Gate(engines, GateSettings(True, 10_000, {"a": 16, "b": 16}), keys, AuditLog(audit), RecordingMetrics())
    store = BatchStore.open(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "batch")
    return engines, gate, store, audit


def _runner(
    gate: Gate, store: BatchStore, live: list[int] | None = None, clock: Any = None, concurrency: int = 2
) -> BatchRunner:
    async def call(path: str, body: bytes, request_id: str, caller: BatchCaller):
        return await asgi_call(gate, path, body, request_id, caller)

    settings = RunnerSettings(concurrency=concurrency, idle_max_live=0, poll_s=0.05, retry_s=0.01)
    counter = live if live is not None else [0]
    return BatchRunner(store, call, settings, live=lambda: counter[0], **({"clock": clock} if clock else {}))


def _batch(store: BatchStore, models: list[str], owner: str = "alice", now: int | None = None):
    now = int(time.time()) if now is None else now
    lines = [
        json.dumps(
            {
                "custom_id": f"c{n}",
                "method": "POST",
                "url": CHAT,
                "body": {"model": m, "messages": [{"role": "user", "content": f"p{n}"}]},
            }
        )
        for n, m in enumerate(models, start=1)
    ]
    file = store.add_file(owner, PURPOSE_BATCH, "in.jsonl", ("\n".join(lines) + "\n").encode(), now)
    return store.create(owner, CHAT, file.id, "24h", {}, total=len(lines), now=now, expires_at=now + 86400)


def _lines(store: BatchStore, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    record = store.file(file_id, "alice")
    assert record is not None and record.purpose == "batch_output"
    return [json.loads(x) for x in store.content(record).decode().splitlines()]


def test_lines_pass_the_gate_and_land_in_the_output_and_error_files(setup) -> None:
    engines, gate, store, audit = setup
    # the key lost model b after the batch was validated: that line is refused by the gate as it runs
    batch = _batch(store, ["a", "a", "b", "a"])
    assert asyncio.run(_runner(gate, store).run_once())
    done = store.batch(batch.id, "alice")
    data = done.to_json()
    assert data["status"] == "completed" and data["request_counts"] == {"total": 4, "completed": 3, "failed": 1}
    assert all(data[k] for k in ("in_progress_at", "finalizing_at", "completed_at"))
    output = _lines(store, data["output_file_id"])
    assert [x["custom_id"] for x in output] == ["c1", "c2", "c4"]
    assert output[0] == {
        "id": f"batch_req_{batch.id}-1",
        "custom_id": "c1",
        "error": None,
        "response": {"status_code": 200, "request_id": f"{batch.id}-1", "body": output[0]["response"]["body"]},
    }
    assert output[0]["response"]["body"]["model"] == "a"
    [refused] = _lines(store, data["error_file_id"])
    assert refused["custom_id"] == "c3" and refused["response"]["status_code"] == 403
    assert refused["response"]["body"]["error"]["code"] == "model_not_allowed"
    assert sorted(engines.prompts) == ["p1", "p2", "p4"]
    audited = [json.loads(x) for x in audit.read_text().splitlines()]
    assert sorted((x["request_id"], x["status"]) for x in audited) == [
        (f"{batch.id}-{n}", 403 if n == 3 else 200) for n in range(1, 5)
    ]
    assert {(x["key"], x["batch_id"], x["endpoint"]) for x in audited} == {("alice", batch.id, CHAT)}
    assert not asyncio.run(_runner(gate, store).run_once())  # nothing left to claim


def test_a_key_revoked_since_the_upload_gets_401_on_every_line(setup) -> None:
    engines, gate, store, _ = setup
    batch = _batch(store, ["a", "a"], owner="mallory")
    asyncio.run(_runner(gate, store).run_once())
    done = store.batch(batch.id)
    assert done.request_counts == {"total": 2, "completed": 0, "failed": 2} and engines.prompts == []
    record = store.file(done.row["error_file_id"], "mallory")
    codes = {json.loads(x)["response"]["body"]["error"]["code"] for x in store.content(record).decode().splitlines()}
    assert codes == {"invalid_api_key"}


def test_a_resumed_batch_does_not_run_answered_lines_again(setup) -> None:
    engines, gate, store, _ = setup
    batch = _batch(store, ["a", "a", "a"])
    store.move(batch.id, BatchStatus.IN_PROGRESS, 1001)  # a runner had started it, answered line 1, then died
    store.record(batch.id, 1, 200, {"id": "kept", "custom_id": "c1", "response": {"status_code": 200}, "error": None})
    asyncio.run(_runner(gate, store).run_once())
    assert sorted(engines.prompts) == ["p2", "p3"]
    output = _lines(store, store.batch(batch.id).row["output_file_id"])
    assert [x["custom_id"] for x in output] == ["c1", "c2", "c3"] and output[0]["id"] == "kept"


def test_budget_refusals_wait_and_are_sent_again(setup) -> None:
    engines, gate, store, _ = setup
    engines.refuse_first = 2
    batch = _batch(store, ["a"])
    asyncio.run(_runner(gate, store).run_once())
    assert store.batch(batch.id).request_counts == {"total": 1, "completed": 1, "failed": 0}


def test_live_traffic_goes_first(setup) -> None:
    engines, gate, store, _ = setup
    batch = _batch(store, ["a"])
    live = [3]

    async def scenario() -> None:
        task = asyncio.create_task(_runner(gate, store, live).run_once())
        await asyncio.sleep(0.3)
        assert engines.prompts == []  # busy: the line waits
        live[0] = 0
        await task

    asyncio.run(scenario())
    assert engines.prompts == ["p1"] and store.batch(batch.id).status is BatchStatus.COMPLETED


def test_a_cancelled_batch_stops_and_reports_what_it_did_not_run(setup) -> None:
    engines, gate, store, _ = setup
    batch = _batch(store, ["a"] * 6)

    async def scenario() -> None:
        engines.hold = asyncio.Event()
        task = asyncio.create_task(_runner(gate, store, concurrency=1).run_once())
        while not engines.prompts:
            await asyncio.sleep(0.01)
        assert store.move(batch.id, BatchStatus.CANCELLING, 1002)  # what POST /v1/batches/{id}/cancel does
        await asyncio.sleep(0.2)  # the runner sees it at its next check
        engines.hold.set()
        await task

    asyncio.run(scenario())
    done = store.batch(batch.id)
    assert done.status is BatchStatus.CANCELLED and done.row["cancelled_at"]
    assert engines.prompts == ["p1"]  # the line in flight finished; no other was sent
    assert done.request_counts == {"total": 6, "completed": 1, "failed": 5}
    errors = _lines(store, done.row["error_file_id"])
    assert [x["error"]["code"] for x in errors] == ["batch_cancelled"] * 5 and errors[0]["response"] is None


def test_a_batch_past_its_window_expires_without_running(setup) -> None:
    engines, gate, store, _ = setup
    batch = _batch(store, ["a", "a"], now=1000)
    asyncio.run(_runner(gate, store, clock=lambda: 1000.0 + 86400).run_once())
    done = store.batch(batch.id)
    assert done.status is BatchStatus.EXPIRED and engines.prompts == []
    assert [x["error"]["code"] for x in _lines(store, done.row["error_file_id"])] == ["batch_expired"] * 2


def test_a_batch_cancelled_before_it_started_is_cancelled_without_running(setup) -> None:
    engines, gate, store, _ = setup
    batch = _batch(store, ["a"])
    store.move(batch.id, BatchStatus.CANCELLING, 1001)
    asyncio.run(_runner(gate, store).run_once())
    assert store.batch(batch.id).status is BatchStatus.CANCELLED and engines.prompts == []


def test_a_line_whose_call_fails_is_answered_500_and_the_batch_goes_on(setup) -> None:
    engines, gate, store, _ = setup
    batch = _batch(store, ["a", "a"])

    async def call(path: str, body: bytes, request_id: str, caller: BatchCaller):
        if request_id.endswith("-1"):
            raise RuntimeError("secret internals")
        return await asgi_call(gate, path, body, request_id, caller)

    runner = BatchRunner(store, call, RunnerSettings(poll_s=0.05), live=lambda: 0)
    asyncio.run(runner.run_once())
    done = store.batch(batch.id)
    assert done.status is BatchStatus.COMPLETED and done.request_counts == {"total": 2, "completed": 1, "failed": 1}
    [failed] = _lines(store, done.row["error_file_id"])
    assert failed["response"]["status_code"] == 500 and "secret" not in json.dumps(failed)
    assert failed["response"]["body"]["error"]["code"] == "batch_line_failed"
