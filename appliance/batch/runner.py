"""The batch runner of an ingress replica: claims a batch (a lease in the registry), sends its lines through the
replica's own gate and routes at low priority, records each answer, and writes the output and error files.

Low priority: at most BATCH_CONCURRENCY lines of a batch in flight, and a line starts only while this replica
has at most BATCH_IDLE_MAX_LIVE_REQUESTS live (non-batch) generation or pooling requests in flight ("idle
enough": the load the gate sees, per ingress replica). A line refused 429 (the owner's token budget) or 503
(the model restarting) waits and is sent again, so a batch never fails for being patient. A restart resumes:
the lease lapses, the next claim takes the batch, and the lines already answered are not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from appliance.batch.caller import BATCH_CALLER_STATE, BatchCaller
from appliance.batch.lines import (
    BatchLine,
    BatchStatus,
    error_body,
    expired,
    output_line,
    unanswered_line,
)
from appliance.batch.store import PURPOSE_OUTPUT, Batch, BatchStore

_LOGGER = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 503})  # the owner's budget, or the model restarting: wait and send again
# (status, body, headers) of one request sent through the replica's app
Call = Callable[[str, bytes, str, BatchCaller], Awaitable[tuple[int, bytes, dict[str, str]]]]


@dataclass(frozen=True)
class RunnerSettings:
    concurrency: int = 4  # BATCH_CONCURRENCY
    idle_max_live: int = 2  # BATCH_IDLE_MAX_LIVE_REQUESTS
    lease_s: float = 30.0  # a runner that stops renewing loses its batch after this long
    poll_s: float = 2.0  # how often an idle runner looks for work, and a busy one renews and checks for a cancel
    retry_s: float = 5.0  # wait before a line refused 429/503 is sent again (unless Retry-After says otherwise)


def input_lines(raw: bytes) -> list[BatchLine]:
    """The lines of an input file that passed validation when the batch was created (the file cannot change)."""
    lines = []
    for number, text in enumerate(raw.decode("utf-8").split("\n"), start=1):
        if text.strip():
            item = json.loads(text)
            lines.append(BatchLine(number, item["custom_id"], json.dumps(item["body"]).encode()))
    return lines


def answer_line(request_id: str, line: BatchLine, status: int, body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):  # never the raw text of a non-JSON answer: a status and a word
        payload = error_body(status, "The request failed without an OpenAI-shaped answer.", "batch_line_failed")
    return output_line(request_id, line.custom_id, status, payload)


class BatchRunner:
    def __init__(
        self,
        store: BatchStore,
        call: Call,
        settings: RunnerSettings,
        live: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.call = call
        self.settings = settings
        self.live = live
        self.clock = clock
        self.id = f"runner-{uuid.uuid4().hex[:12]}"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop on the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batch-runner")

    async def _loop(self) -> None:
        while True:
            try:
                if not await self.run_once():
                    await asyncio.sleep(self.settings.poll_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                _LOGGER.exception("batch runner %s: a pass failed; retrying in %.0f s", self.id, self.settings.poll_s)
                await asyncio.sleep(self.settings.poll_s)

    async def run_once(self) -> bool:
        """Claim one batch and take it as far as it goes; False when there was none."""
        batch = await asyncio.to_thread(self.store.claim, self.id, now=self.clock(), lease_s=self.settings.lease_s)
        if batch is None:
            return False
        try:
            await self._run(batch)
        finally:
            await asyncio.to_thread(self.store.release, batch.id, self.id)
        return True

    async def _run(self, batch: Batch) -> None:
        now = int(self.clock())
        status = batch.status
        _LOGGER.info("batch %s: claimed by %s (%s)", batch.id, self.id, status.value)
        if status is BatchStatus.VALIDATING:
            await self._move(batch, BatchStatus.IN_PROGRESS)
            now_status = await asyncio.to_thread(self.store.status, batch.id)  # a cancel may have come first
            status = now_status or status
        lines = await self._lines(batch)
        if status is BatchStatus.IN_PROGRESS:
            if expired(batch.row["created_at"], batch.row["completion_window"], now):
                status = BatchStatus.EXPIRED
            else:
                status = await self._send_lines(batch, lines)
                if status is BatchStatus.IN_PROGRESS:
                    return  # the lease was lost: another runner has the batch now
        if status is BatchStatus.FINALIZING:
            await self._move(batch, BatchStatus.FINALIZING)
            await self._finish(batch, lines, BatchStatus.COMPLETED)
        elif status is BatchStatus.CANCELLING:
            await self._finish(batch, lines, BatchStatus.CANCELLED, "batch_cancelled", "The batch was cancelled.")
        elif status is BatchStatus.EXPIRED:
            await self._finish(
                batch,
                lines,
                BatchStatus.EXPIRED,
                "batch_expired",
                "The batch was not finished within its completion window.",
            )

    async def _lines(self, batch: Batch) -> list[BatchLine] | None:
        """The input file's lines; None when its file was deleted while the batch ran."""
        record = await asyncio.to_thread(self.store.file, batch.row["input_file_id"], batch.owner)
        raw = await asyncio.to_thread(self.store.content, record) if record is not None else None
        return input_lines(raw) if raw is not None else None

    async def _send_lines(self, batch: Batch, lines: list[BatchLine] | None) -> BatchStatus:
        """Send the lines not yet answered; the status the batch is left in: FINALIZING (every line answered),
        CANCELLING, EXPIRED, or IN_PROGRESS when this runner lost the lease."""
        if lines is None:
            return BatchStatus.FINALIZING  # _finish answers every line: the input is gone
        done = await asyncio.to_thread(self.store.answered, batch.id)
        queue: asyncio.Queue[BatchLine] = asyncio.Queue()
        for line in lines:
            if line.line not in done:
                queue.put_nowait(line)
        stop: list[BatchStatus] = []
        workers = [
            asyncio.create_task(self._worker(batch, queue, stop))
            for _ in range(min(self.settings.concurrency, max(1, queue.qsize())))
        ]
        try:
            while not all(w.done() for w in workers):
                await asyncio.wait(workers, timeout=self.settings.poll_s)
                if not stop:
                    verdict = await self._check(batch)
                    if verdict is not None:
                        stop.append(verdict)
            for worker in workers:
                worker.result()  # a worker's failure is the pass's failure (the loop logs it)
        finally:
            for worker in workers:
                worker.cancel()
        return stop[0] if stop else BatchStatus.FINALIZING

    async def _check(self, batch: Batch) -> BatchStatus | None:
        """Between lines: the lease renewed, and whether the batch must stop (cancelled, expired, lease lost)."""
        now = self.clock()
        if not await asyncio.to_thread(self.store.renew, batch.id, self.id, now=now, lease_s=self.settings.lease_s):
            _LOGGER.warning("batch %s: runner %s lost its lease; stopping", batch.id, self.id)
            return BatchStatus.IN_PROGRESS
        if await asyncio.to_thread(self.store.status, batch.id) is BatchStatus.CANCELLING:
            return BatchStatus.CANCELLING
        if expired(batch.row["created_at"], batch.row["completion_window"], now):
            return BatchStatus.EXPIRED
        return None

    async def _worker(self, batch: Batch, queue: asyncio.Queue[BatchLine], stop: list[BatchStatus]) -> None:
        caller = BatchCaller(batch.owner, batch.id)
        while not stop and not queue.empty():
            line = queue.get_nowait()
            request_id = f"{batch.id}-{line.line}"
            while not stop:
                while self.live() > self.settings.idle_max_live and not stop:
                    await asyncio.sleep(0.2)  # live traffic first
                if stop:
                    return
                try:
                    status, body, headers = await self.call(batch.row["endpoint"], line.body, request_id, caller)
                except Exception as err:
                    _LOGGER.error("batch %s line %d: %s (answered 500)", batch.id, line.line, type(err).__name__)
                    status, body, headers = 500, b"", {}
                if status in RETRY_STATUSES:
                    await asyncio.sleep(_retry_after(headers, self.settings.retry_s))
                    continue
                result = answer_line(request_id, line, status, body)
                await asyncio.to_thread(self.store.record, batch.id, line.line, status, result)
                break

    async def _move(self, batch: Batch, target: BatchStatus, **files: str | None) -> bool:
        return await asyncio.to_thread(
            self.store.move, batch.id, target, int(self.clock()), lease_owner=self.id, **files
        )

    async def _finish(
        self, batch: Batch, lines: list[BatchLine] | None, target: BatchStatus, code: str = "", message: str = ""
    ) -> None:
        """Answer every line not answered (as ``code``; the input file gone: ``input_file_missing``), write the
        output and error files, and move the batch to ``target``."""
        done = await asyncio.to_thread(self.store.answered, batch.id)
        if lines is None:  # DELETE refuses an active batch's input: only a file lost on disk gets here
            _LOGGER.error("batch %s: its input file is gone; the lines not answered are not run", batch.id)
        for line in lines or []:
            if line.line not in done:
                entry = unanswered_line(line.line, batch.id, line.custom_id, code or "batch_not_run", message)
                await asyncio.to_thread(self.store.record, batch.id, line.line, 0, entry)
        if lines is None and not done:
            entry = unanswered_line(
                0, batch.id, "", "input_file_missing", "The batch's input file was deleted before its lines ran."
            )
            await asyncio.to_thread(self.store.record, batch.id, 0, 0, entry)
        results = await asyncio.to_thread(self.store.results, batch.id)
        outputs = [text for status, text in results if 200 <= status < 300]
        errors = [text for status, text in results if not 200 <= status < 300]
        now = int(self.clock())
        out = await self._result_file(batch, "output", outputs, now)
        err = await self._result_file(batch, "error", errors, now)
        if await self._move(batch, target, output_file_id=out, error_file_id=err):
            _LOGGER.info("batch %s: %s (%d answered, %d errors)", batch.id, target.value, len(outputs), len(errors))

    async def _result_file(self, batch: Batch, kind: str, lines: list[str], now: int) -> str | None:
        if not lines:
            return None
        file_id = f"file-{kind}-{batch.id.removeprefix('batch_')}"  # one per batch: a finish redone writes it once
        data = ("\n".join(lines) + "\n").encode()
        record = await asyncio.to_thread(
            self.store.add_file, batch.owner, PURPOSE_OUTPUT, f"{batch.id}_{kind}.jsonl", data, now, file_id
        )
        return record.id


def _retry_after(headers: dict[str, str], default: float) -> float:
    with contextlib.suppress(ValueError):
        return min(60.0, max(0.5, float(headers.get("retry-after", default))))
    return default


async def asgi_call(
    app: Any, path: str, body: bytes, request_id: str, caller: BatchCaller
) -> tuple[int, bytes, dict[str, str]]:
    """One POST through ``app`` (the replica's whole ASGI app: the gate first) as the batch's caller."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("batch", 0),
        "server": ("127.0.0.1", 0),
        "state": {BATCH_CALLER_STATE: caller},
    }
    finished = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    status = 500
    answer_headers: dict[str, str] = {}
    parts: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            answer_headers.update(
                {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])}
            )
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    try:
        await app(scope, receive, send)
    finally:
        finished.set()
    return status, b"".join(parts), answer_headers
